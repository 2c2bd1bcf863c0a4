"""The label store's tables at the current schema version, for each backend.

The tables and columns are the same on both backends, so one set of queries serves both; only
types, key generation and the append-only triggers are written per dialect.

Version history
---------------
1. meta, answers (append-only), requests, assignments, rounds. SQLite only.
2. requests and assignments get an explicit ``seq`` column (their order of insertion), replacing
   SQLite's implicit ``rowid`` which PostgreSQL lacks. (See :mod:`alloop.store.migrations`.)
"""

from __future__ import annotations

SCHEMA_VERSION = 2

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


SQLITE = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # AUTOINCREMENT: a seq is never reused, even after the last row of a rolled-back insert.
    f"""
    CREATE TABLE answers (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id    TEXT    NOT NULL,
        label      TEXT,
        kind       TEXT    NOT NULL {_KINDS},
        annotator  TEXT    NOT NULL,
        round      INTEGER NOT NULL,
        cost       REAL,
        created_at REAL    NOT NULL
    )""",
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
    """
    CREATE TRIGGER answers_append_only_update BEFORE UPDATE ON answers
    BEGIN SELECT RAISE(ABORT, 'the label store is append-only: answers cannot be changed'); END""",
    """
    CREATE TRIGGER answers_append_only_delete BEFORE DELETE ON answers
    BEGIN SELECT RAISE(ABORT, 'the label store is append-only: answers cannot be deleted'); END""",
)

# ----------------------------------------------------------------------------------- PostgreSQL

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
        created_at DOUBLE PRECISION NOT NULL
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
    # Statement-level, so even an UPDATE or DELETE matching no row is refused, and TRUNCATE too.
    """
    CREATE FUNCTION answers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = 'the label store is append-only: answers cannot be '
            || CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END;
    END
    $$""",
    """
    CREATE TRIGGER answers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON answers
    FOR EACH STATEMENT EXECUTE FUNCTION answers_append_only()""",
)

#: backend → the statements creating an empty store at :data:`SCHEMA_VERSION`.
CREATE = {"sqlite": SQLITE, "postgresql": POSTGRESQL}
