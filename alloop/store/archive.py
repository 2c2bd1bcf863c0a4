"""Set a label store aside under a timestamped name, so a run can start over (``--fresh``).

Answers are never deleted: a SQLite file (with its WAL and shared-memory files, which hold
committed answers until a checkpoint) is renamed; a PostgreSQL store in its own schema has
that schema renamed.
"""

from __future__ import annotations

import time
from pathlib import Path

from alloop.store.connect import parse_target

_SIDECARS = ("-wal", "-shm", "-journal")


def _stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def archive_store(target: str | Path, *, now: float | None = None) -> str | None:
    """Rename the label store at ``target`` out of the way and return where it went.

    Parameters
    ----------
    target : str or Path
        A SQLite file, or a PostgreSQL URL with ``?schema=NAME``.
    now : float, optional
        The time stamped on the name (default: the current time).

    Returns
    -------
    str or None
        The archived store's path (or ``URL?schema=NEW``); None when there was nothing to archive.

    Raises
    ------
    ValueError
        A PostgreSQL store without its own schema: its tables cannot be set aside alone.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "run.sqlite").write_bytes(b"")
    >>> archive_store(folder / "run.sqlite", now=0).endswith("run.19700101T000000Z.sqlite")
    True
    >>> archive_store(folder / "run.sqlite") is None
    True
    """
    where = parse_target(target)
    if where.backend == "sqlite":
        database = where.url.database or ":memory:"
        if database == ":memory:" or not Path(database).is_file():
            return None
        path = Path(database)
        stamp, n = _stamp(now), 0
        while True:  # two archives in one second get -1, -2, ...
            name = f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}"
            archived = path.with_name(name)
            if not any(Path(f"{archived}{s}").exists() for s in ("", *_SIDECARS)):
                break
            n += 1
        for suffix in _SIDECARS:  # the WAL first: a store is never left without its answers
            side = Path(f"{path}{suffix}")
            if side.exists():
                side.rename(f"{archived}{suffix}")
        path.rename(archived)
        return str(archived)
    if not where.schema:
        raise ValueError(
            f"--fresh cannot set aside the store at {where.display}: its tables share the "
            "database's default schema. Give the run its own schema (store.url: ...?schema=NAME) "
            "or a new database"
        )
    from sqlalchemy import inspect

    from alloop.store.connect import create_engine

    engine = create_engine(where)
    try:
        with engine.begin() as conn:
            if where.schema not in inspect(conn).get_schema_names():
                return None
            new = f"{where.schema}_{_stamp(now).lower()}"
            conn.exec_driver_sql(f'ALTER SCHEMA "{where.schema}" RENAME TO "{new}"')
    finally:
        engine.dispose()
    return f"{where.display} (schema renamed to {new})"
