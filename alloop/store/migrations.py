"""Bring a label store to the current schema version on open, or refuse a newer one.

The version lives in the ``meta`` table (key ``schema_version``). Opening a store runs
:func:`prepare` in one transaction that holds the store's write lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL), so concurrent openers of a new or old store create or
migrate it exactly once, and a migration that fails part-way leaves the store as it was (DDL is
transactional on both backends).

Adding version N+1: change :mod:`alloop.store.schema` (the DDL of a new store), bump
``SCHEMA_VERSION``, and register here one function per backend that turns a version-N store into
it, e.g. ``MIGRATIONS["sqlite", N] = _sqlite_N_to_N1``; test it on a store made with version N's
DDL.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

from alloop.store.chain import GENESIS, answer_hash
from alloop.store.schema import (
    CREATE,
    HISTORY,
    PG_FUNCTION,
    SCHEMA_VERSION,
    pg_trigger,
    sqlite_answers,
    sqlite_assignments,
    sqlite_requests,
    sqlite_triggers,
)


class SchemaVersionError(RuntimeError):
    """The store's schema is newer than this alloop, or has no migration path."""


def _sqlite_1_to_2(conn: Connection) -> None:
    """Give requests and assignments an explicit ``seq``: their rowid, so the order is kept."""
    tables = {
        "requests": (sqlite_requests, "round, item_id, score, annotator, requested_at"),
        "assignments": (sqlite_assignments, "round, item_id, annotator, assigned_at"),
    }
    for name, (create, columns) in tables.items():
        conn.exec_driver_sql(create(f"{name}_v2"))
        conn.exec_driver_sql(
            f"INSERT INTO {name}_v2 (seq, {columns}) SELECT rowid, {columns} FROM {name} ORDER BY rowid"
        )
        conn.exec_driver_sql(f"DROP TABLE {name}")
        conn.exec_driver_sql(f"ALTER TABLE {name}_v2 RENAME TO {name}")


_FIELDS = "seq, item_id, label, kind, annotator, round, cost, created_at"


def _chained(conn: Connection) -> list[dict]:
    """The answers in seq order with the hash chain computed over them."""
    rows, previous = [], GENESIS
    for seq, *fields in conn.exec_driver_sql(f"SELECT {_FIELDS} FROM answers ORDER BY seq"):
        previous = answer_hash(previous, *fields)
        rows.append({"seq": seq, "hash": previous})
    return rows


def _sqlite_2_to_3(conn: Connection) -> None:
    """Answers get their hash chain (the table is rebuilt: its triggers forbid UPDATE), and every
    history table gets the append-only triggers."""
    hashes = {r["seq"]: r["hash"] for r in _chained(conn)}
    conn.exec_driver_sql(sqlite_answers("answers_v3"))
    for seq, *fields in conn.exec_driver_sql(f"SELECT {_FIELDS} FROM answers ORDER BY seq").fetchall():
        conn.exec_driver_sql(
            f"INSERT INTO answers_v3 ({_FIELDS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, *fields, hashes[seq]),
        )
    conn.exec_driver_sql("DROP TABLE answers")  # its triggers and indexes go with it
    conn.exec_driver_sql("ALTER TABLE answers_v3 RENAME TO answers")
    conn.exec_driver_sql("CREATE INDEX answers_item ON answers (item_id)")
    conn.exec_driver_sql("CREATE INDEX answers_round ON answers (round)")
    for table in HISTORY:
        for statement in sqlite_triggers(table):
            conn.exec_driver_sql(statement)


def _postgresql_2_to_3(conn: Connection) -> None:
    """Answers get their hash chain; one append-only trigger function for every history table."""
    conn.exec_driver_sql("ALTER TABLE answers ADD COLUMN hash TEXT")
    conn.exec_driver_sql("ALTER TABLE answers DISABLE TRIGGER answers_append_only")
    for row in _chained(conn):
        conn.execute(text("UPDATE answers SET hash = :hash WHERE seq = :seq"), row)
    conn.exec_driver_sql("ALTER TABLE answers ALTER COLUMN hash SET NOT NULL")
    conn.exec_driver_sql("DROP TRIGGER answers_append_only ON answers")
    conn.exec_driver_sql("DROP FUNCTION answers_append_only()")
    conn.exec_driver_sql(PG_FUNCTION)
    for table in HISTORY:
        conn.exec_driver_sql(pg_trigger(table))


#: (backend, version) → the step that turns a store at that version into version + 1.
#: PostgreSQL stores began at version 2.
MIGRATIONS: dict[tuple[str, int], Callable[[Connection], None]] = {
    ("sqlite", 1): _sqlite_1_to_2,
    ("sqlite", 2): _sqlite_2_to_3,
    ("postgresql", 2): _postgresql_2_to_3,
}


def stored_version(conn: Connection, backend: str) -> int | None:
    """The store's schema version; None for an empty database."""
    if not inspect(conn).has_table("meta"):
        return None
    row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).fetchone()
    if row is not None:
        try:
            version = json.loads(row[0])
        except ValueError:
            version = row[0]
        if not isinstance(version, int) or isinstance(version, bool):
            raise SchemaVersionError(
                f"the store's schema_version is {version!r}, not an integer version: the meta "
                "table was edited or written by something else. Restore the store from a backup, "
                "or use a new store path (nothing was changed)"
            )
        return version
    if backend == "sqlite" and inspect(conn).has_table("answers"):
        return 1  # version 1 wrote its tables and its version in two steps
    raise SchemaVersionError(
        "the database has a table 'meta' that is not an alloop label store's (no schema_version); "
        "use a database of its own, or on PostgreSQL a schema of its own: ...?schema=labels"
    )


def prepare(engine: Engine, backend: str, where: str, schema: str | None = None) -> int:
    """Create, migrate or check the store; return the version it was at (0 for a new store).

    Parameters
    ----------
    engine : Engine
        Connected to the store's database.
    backend : {"sqlite", "postgresql"}
    where : str
        The store's location, for messages.
    schema : str, optional
        PostgreSQL: the schema to hold the tables (created if absent).

    Raises
    ------
    SchemaVersionError
        When the store is newer than :data:`SCHEMA_VERSION` (upgrade alloop), or no migration
        leads from its version.
    """
    with engine.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin() as conn:
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('alloop label store schema'))"))
            exists = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                                  {"s": schema}).fetchone() if schema else True
            if not exists:  # a role that may only read and insert need not create schemas
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        found = stored_version(conn, backend)
        if found is None:
            for statement in CREATE[backend]:
                conn.exec_driver_sql(statement)
        elif found > SCHEMA_VERSION:
            from alloop import __version__

            raise SchemaVersionError(
                f"label store {where} has schema version {found}, newer than the version "
                f"{SCHEMA_VERSION} this alloop ({__version__}) reads: upgrade alloop "
                "(pip install --upgrade alloop) to open it"
            )
        else:
            for version in range(found, SCHEMA_VERSION):
                step = MIGRATIONS.get((backend, version))
                if step is None:
                    raise SchemaVersionError(
                        f"label store {where} has schema version {found}, and alloop has no "
                        f"{backend} migration from version {version} to {version + 1}"
                    )
                step(conn)
        if found != SCHEMA_VERSION:
            conn.execute(
                text(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', :v) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                {"v": json.dumps(SCHEMA_VERSION)},
            )
    return found or 0
