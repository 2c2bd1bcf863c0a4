"""The label store's tables at the current schema version, for each backend.

The tables and columns are the same on both backends, so one set of queries serves both; only
types, key generation and the append-only triggers are written per dialect.

Version history
---------------
1. meta, answers (append-only), requests, assignments, rounds. SQLite only.
2. requests and assignments get an explicit ``seq`` column (their order of insertion), replacing
   SQLite's implicit ``rowid`` which PostgreSQL lacks. (See :mod:`alloop.store.migrations`.)
3. every history table (:data:`HISTORY`) is append-only: triggers refuse UPDATE and DELETE (and
   TRUNCATE on PostgreSQL); on SQLite a BEFORE INSERT trigger also refuses a row whose key
   exists, which ``REPLACE`` / ``INSERT OR REPLACE`` would otherwise overwrite without firing
   any DELETE trigger. Answers carry ``hash``, chained to the previous answer's
   (:mod:`alloop.store.chain`).
"""

from __future__ import annotations

SCHEMA_VERSION = 3

#: tables that are history: rows are only ever added. ``meta`` (run id, fingerprint, the writer
#: lease) is the one table that changes.
HISTORY = ("answers", "requests", "assignments", "rounds")

_KINDS = "CHECK (kind IN ('label', 'skip', 'unsure'))"

# --------------------------------------------------------------------------------------- SQLite


def sqlite_requests(name: str = "requests") -> str:
    # ``seq INTEGER PRIMARY KEY`` is the rowid: increasing in insertion order.
    return f"""
    CREATE TABLE {name} (
        seq          INTEGER PRIMARY KEY,
        round        INTEGER NOT NULL,
        item_id      TEXT    NOT NULL,
        score        REAL,
        annotator    TEXT,
        requested_at REAL    NOT NULL,
        UNIQUE (round, item_id)
    )"""


def sqlite_assignments(name: str = "assignments") -> str:
    return f"""
    CREATE TABLE {name} (
        seq         INTEGER PRIMARY KEY,
        round       INTEGER NOT NULL,
        item_id     TEXT    NOT NULL,
        annotator   TEXT    NOT NULL,
        assigned_at REAL    NOT NULL,
        UNIQUE (round, item_id, annotator)
    )"""


def sqlite_answers(name: str = "answers") -> str:
    # AUTOINCREMENT: a seq is never reused, even after the last row of a rolled-back insert.
    return f"""
    CREATE TABLE {name} (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id    TEXT    NOT NULL,
        label      TEXT,
        kind       TEXT    NOT NULL {_KINDS},
        annotator  TEXT    NOT NULL,
        round      INTEGER NOT NULL,
        cost       REAL,
        created_at REAL    NOT NULL,
        hash       TEXT    NOT NULL
    )"""


#: table → the condition under which a new row would collide with (and REPLACE remove) a stored
#: one: any of its unique keys.
_SQLITE_KEYS = {
    "answers": "seq = NEW.seq",
    "requests": "seq = NEW.seq OR (round = NEW.round AND item_id = NEW.item_id)",
    "assignments": "seq = NEW.seq OR (round = NEW.round AND item_id = NEW.item_id "
                   "AND annotator = NEW.annotator)",
    "rounds": "round = NEW.round",
}


def sqlite_triggers(table: str) -> tuple[str, ...]:
    """The triggers that make a SQLite history table append-only."""
    stop = f"SELECT RAISE(ABORT, 'the label store is append-only: {table} rows cannot be"
    return (
        f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} "
        f"BEGIN {stop} changed'); END",
        f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
        f"BEGIN {stop} deleted'); END",
        f"CREATE TRIGGER {table}_append_only_insert BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {_SQLITE_KEYS[table]}) "
        f"BEGIN {stop} replaced'); END",
    )


SQLITE = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    sqlite_answers(),
    "CREATE INDEX answers_item ON answers (item_id)",
    "CREATE INDEX answers_round ON answers (round)",
    sqlite_requests(),
    sqlite_assignments(),
    """
    CREATE TABLE rounds (
        round        INTEGER PRIMARY KEY,
        n_labeled    INTEGER NOT NULL,
        metrics      TEXT    NOT NULL,
        completed_at REAL    NOT NULL
    )""",
    *(t for table in HISTORY for t in sqlite_triggers(table)),
)

# ----------------------------------------------------------------------------------- PostgreSQL

#: One function for every history table. Statement-level, so even an UPDATE or DELETE matching
#: no row is refused, TRUNCATE too, and an ``INSERT ... ON CONFLICT DO UPDATE`` (which fires the
#: statement's UPDATE triggers) as well. PostgreSQL has no REPLACE.
PG_FUNCTION = """
    CREATE FUNCTION alloop_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = 'the label store is append-only: ' || TG_TABLE_NAME
            || ' rows cannot be '
            || CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END;
    END
    $$"""


def pg_trigger(table: str) -> str:
    return (f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION alloop_append_only()")


POSTGRESQL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # seq comes from an identity sequence; appends take turns (an advisory lock, see
    # LabelStore.append), so seq order is commit order.
    f"""
    CREATE TABLE answers (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        item_id    TEXT    NOT NULL,
        label      TEXT,
        kind       TEXT    NOT NULL {_KINDS},
        annotator  TEXT    NOT NULL,
        round      INTEGER NOT NULL,
        cost       DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        hash       TEXT    NOT NULL
    )""",
    "CREATE INDEX answers_item ON answers (item_id)",
    "CREATE INDEX answers_round ON answers (round)",
    """
    CREATE TABLE requests (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        round        INTEGER NOT NULL,
        item_id      TEXT    NOT NULL,
        score        DOUBLE PRECISION,
        annotator    TEXT,
        requested_at DOUBLE PRECISION NOT NULL,
        UNIQUE (round, item_id)
    )""",
    """
    CREATE TABLE assignments (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        round       INTEGER NOT NULL,
        item_id     TEXT    NOT NULL,
        annotator   TEXT    NOT NULL,
        assigned_at DOUBLE PRECISION NOT NULL,
        UNIQUE (round, item_id, annotator)
    )""",
    """
    CREATE TABLE rounds (
        round        INTEGER PRIMARY KEY,
        n_labeled    INTEGER NOT NULL,
        metrics      TEXT    NOT NULL,
        completed_at DOUBLE PRECISION NOT NULL
    )""",
    PG_FUNCTION,
    *(pg_trigger(table) for table in HISTORY),
)

#: backend → the statements creating an empty store at :data:`SCHEMA_VERSION`.
CREATE = {"sqlite": SQLITE, "postgresql": POSTGRESQL}
