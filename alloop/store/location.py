"""Whether a label store is at a target, and removing one with all its history."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from alloop.store.connect import create_engine, parse_target
from alloop.store.lease import StoreLeaseError


def store_exists(target: str | Path) -> bool:
    """Whether a label store is at ``target`` (a SQLite file, or the tables in a database)."""
    where = parse_target(target)
    if where.backend == "sqlite":
        path = where.url.database or ":memory:"
        return path != ":memory:" and Path(path).is_file()
    engine = create_engine(where)
    try:
        with engine.connect() as conn:
            return inspect(conn).has_table("meta")
    finally:
        engine.dispose()


def _refuse_if_written(path: str) -> None:
    """A SQLite store whose writer lease another process holds is not removed under it."""
    from filelock import FileLock, Timeout

    if not Path(f"{path}.lock").exists():
        return
    lock = FileLock(f"{path}.lock", timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise StoreLeaseError(
            f"label store {path} is being written by another process; it is not removed. Stop "
            "that run first (or wait for it to end)."
        ) from None
    lock.release()


def remove_store(target: str | Path) -> None:
    """Delete the label store at ``target`` with all its history (absent: nothing happens).

    SQLite: the file and its WAL/journal files. PostgreSQL: the ``?schema=`` schema, or without
    one the store's tables. The append-only triggers guard answers against edits, not this.
    """
    where = parse_target(target)
    if where.backend == "sqlite":
        path = where.url.database or ":memory:"
        if path != ":memory:":
            _refuse_if_written(path)
            for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    engine = create_engine(where)
    try:
        with engine.begin() as conn:
            if where.schema:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{where.schema}" CASCADE')
            else:
                conn.exec_driver_sql(
                    "DROP TABLE IF EXISTS answers, requests, assignments, rounds, meta")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS answers_append_only()")  # version 2
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS alloop_append_only()")
    finally:
        engine.dispose()
