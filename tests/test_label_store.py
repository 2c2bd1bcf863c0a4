"""The label store's guarantees, on SQLite and on a real PostgreSQL server (``label_store_url``
runs each test once per backend; see conftest.py)."""

import sqlite3
import threading

import numpy as np
import psycopg
import pytest

from alloop.records import Answer
from alloop.store import (
    SCHEMA_VERSION,
    LabelStore,
    SchemaVersionError,
    migrations,
    open_store,
    remove_store,
    store_exists,
)
from alloop.store.connect import parse_target


def raw_connection(url: str):
    """A plain driver connection, bypassing alloop: what the database itself enforces."""
    if url.startswith("postgresql://"):
        return psycopg.connect(url, autocommit=True)
    return sqlite3.connect(url, isolation_level=None)


def run_threads(n: int, work) -> None:
    """Run ``work(i)`` in n threads started together; re-raise the first failure."""
    barrier, errors = threading.Barrier(n), []

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------ the basics


def test_answers_are_durable_and_history_is_kept(label_store_url):
    store = open_store(label_store_url)
    seqs = [
        store.append(Answer("a", 1, annotator="ann1"), round=0),
        store.append(Answer("b", kind="skip", annotator="ann1"), round=0),
        store.append(Answer("a", 2, annotator="ann2"), round=1),  # a relabel adds a row
    ]
    store.close()

    # A second connection (as after a crash) sees every committed answer.
    reopened = open_store(label_store_url)
    rows = reopened.answers()
    assert [(a.item_id, a.label, a.kind, a.annotator) for a in rows] == [
        ("a", 1, "label", "ann1"),
        ("b", None, "skip", "ann1"),
        ("a", 2, "label", "ann2"),
    ]
    assert [a.seq for a in rows] == seqs == sorted(seqs)
    assert len(reopened) == 3
    assert [a.item_id for a in reopened.answers(round=0, kind="label")] == ["a"]
    assert reopened.current_labels() == {"a": 2}
    assert reopened.current_labels(max_round=0) == {"a": 1}
    reopened.close()


def test_sqlite_store_runs_in_wal_mode(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_store_refuses_updates_and_deletes(label_store_url):
    store = open_store(label_store_url)
    store.append(Answer("a", 1), round=0)
    conn = raw_connection(label_store_url)
    statements = ["UPDATE answers SET label = '5'", "DELETE FROM answers"]
    if store.backend == "postgresql":
        statements.append("TRUNCATE answers")
    for statement in statements:
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            conn.execute(statement)
    conn.close()
    assert store.current_labels() == {"a": 1}
    store.close()


def test_label_types_round_trip(label_store_url):
    store = open_store(label_store_url)
    for i, label in enumerate([np.int64(3), "cat", 2.5, True, None]):
        store.append(Answer(str(i), label), round=0)
    assert list(store.current_labels().values()) == [3, "cat", 2.5, True]
    store.close()


def test_rounds_requests_and_assignments(label_store_url):
    store = open_store(label_store_url)
    store.record_requests(1, ["x", "b", "y"], [0.9, None, 0.1])
    store.record_requests(1, ["x", "b", "y"], [0.9, None, 0.1])  # idempotent on a re-run
    store.record_requests(2, ["z", "x"], [0.5, 0.4])
    assert store.requests(1) == [("x", 0.9), ("b", None), ("y", 0.1)]  # selection order
    assert store.requested_items(before_round=3) == ["x", "b", "y", "z"]
    store.record_assignments(1, {"x": ["ann2", "ann1"], "b": ["ann1"]})
    store.record_assignments(1, {"x": ["ann2"]})
    assert store.assignments(1) == {"x": ["ann2", "ann1"], "b": ["ann1"]}
    store.complete_round(1, 12, {"accuracy": 0.5})
    # a completed round is history (this asserted the opposite before issue 14)
    with pytest.raises(ValueError, match="round 1 .* already complete"):
        store.complete_round(1, 13, {"accuracy": 0.75})
    assert store.completed_rounds() == {1: {"n_labeled": 12, "metrics": {"accuracy": 0.5}}}
    store.set_meta("run_id", "abc")
    assert store.get_meta("run_id") == "abc" and store.get_meta("missing") is None
    store.close()


# ------------------------------------------------------------------------------ concurrency


def test_one_store_shared_by_eight_threads(label_store_url):
    store = open_store(label_store_url)
    run_threads(8, lambda t: [store.append(Answer(f"i{k}", t, annotator=f"a{t}"), 0)
                              for k in range(50)])
    rows = store.answers()
    assert len(rows) == 400 and len({r.seq for r in rows}) == 400
    assert {(r.item_id, r.annotator) for r in rows} == {
        (f"i{k}", f"a{t}") for k in range(50) for t in range(8)
    }
    store.close()


def test_concurrent_first_opens_create_one_schema(label_store_url):
    # Eight processes' worth of stores open a store nobody has created yet, all at once.
    stores = [None] * 8

    def work(i):
        stores[i] = open_store(label_store_url)
        stores[i].append(Answer(f"i{i}", i), round=0)

    run_threads(8, work)
    assert len(stores[0]) == 8 and stores[0].get_meta("schema_version") == SCHEMA_VERSION
    for s in stores:
        s.close()


def test_racing_writers_record_each_request_and_assignment_once(label_store_url):
    open_store(label_store_url).close()
    items = [f"item{k}" for k in range(40)]

    def work(i):
        with open_store(label_store_url) as store:
            store.record_requests(3, items, np.linspace(1, 0, len(items)))
            store.record_assignments(3, {item: ["ann0", "ann1"] for item in items})

    run_threads(8, work)
    with open_store(label_store_url) as store:
        assert [i for i, _ in store.requests(3)] == items
        assert store.assignments(3) == {item: ["ann0", "ann1"] for item in items}


def test_readers_see_the_log_grow_in_commit_order(label_store_url):
    """Every read of the log is a prefix of every later read: seq order is commit order, so no
    answer ever appears before one a reader has already seen."""
    open_store(label_store_url).close()
    snapshots, done = [], threading.Event()

    def reader():
        with open_store(label_store_url) as store:
            while not done.is_set():
                snapshots.append([a.seq for a in store.answers()])

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        def work(i):
            with open_store(label_store_url) as store:
                for k in range(60):
                    store.append(Answer(f"i{k}", k, annotator=f"a{i}"), round=0)

        run_threads(6, work)
    finally:
        done.set()
        watcher.join()
    with open_store(label_store_url) as store:
        final = [a.seq for a in store.answers()]
    assert len(final) == 360 and final == sorted(set(final))
    assert len(snapshots) > 1
    assert all(s == final[: len(s)] for s in snapshots)


# ------------------------------------------------------------------------------ versions


def test_a_newer_store_is_refused_naming_both_versions_and_the_fix(label_store_url):
    with open_store(label_store_url) as store:
        store.append(Answer("a", 1), round=0)
        store.set_meta("schema_version", SCHEMA_VERSION + 97)
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 97}") as info:
        open_store(label_store_url)
    assert f"version {SCHEMA_VERSION} this alloop" in str(info.value)
    assert "upgrade alloop" in str(info.value)


# The DDL of schema version 1 (alloop ≤ 0.1.0, SQLite only), as those versions wrote it.
V1_SQLITE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id    TEXT    NOT NULL,
    label      TEXT,
    kind       TEXT    NOT NULL CHECK (kind IN ('label', 'skip', 'unsure')),
    annotator  TEXT    NOT NULL,
    round      INTEGER NOT NULL,
    cost       REAL,
    created_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_item ON answers (item_id);
CREATE INDEX IF NOT EXISTS answers_round ON answers (round);
CREATE TABLE IF NOT EXISTS requests (
    round        INTEGER NOT NULL,
    item_id      TEXT    NOT NULL,
    score        REAL,
    annotator    TEXT,
    requested_at REAL    NOT NULL,
    PRIMARY KEY (round, item_id)
);
CREATE TABLE IF NOT EXISTS assignments (
    round       INTEGER NOT NULL,
    item_id     TEXT    NOT NULL,
    annotator   TEXT    NOT NULL,
    assigned_at REAL    NOT NULL,
    PRIMARY KEY (round, item_id, annotator)
);
CREATE TABLE IF NOT EXISTS rounds (
    round        INTEGER PRIMARY KEY,
    n_labeled    INTEGER NOT NULL,
    metrics      TEXT    NOT NULL,
    completed_at REAL    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS answers_append_only_update BEFORE UPDATE ON answers
BEGIN SELECT RAISE(ABORT, 'the label store is append-only: answers cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS answers_append_only_delete BEFORE DELETE ON answers
BEGIN SELECT RAISE(ABORT, 'the label store is append-only: answers cannot be deleted'); END;
INSERT INTO meta VALUES ('schema_version', '1'), ('run_id', '"run-7"');
INSERT INTO answers (item_id, label, kind, annotator, round, cost, created_at) VALUES
    ('m', '1', 'label', 'ann1', 0, NULL, 1.0),
    ('a', NULL, 'skip', 'ann2', 0, 2.5, 2.0),
    ('m', '0', 'label', 'ann2', 1, NULL, 3.0);
INSERT INTO requests VALUES (1, 'z', 0.9, NULL, 1.0), (1, 'a', 0.5, NULL, 1.0),
    (1, 'm', NULL, NULL, 1.0), (2, 'b', 0.1, NULL, 2.0);
INSERT INTO assignments VALUES (1, 'z', 'ann2', 1.0), (1, 'z', 'ann1', 1.0), (1, 'a', 'ann1', 1.0);
INSERT INTO rounds VALUES (1, 3, '{"accuracy": 0.5}', 4.0);
"""


def v1_store(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQLITE)
    conn.close()


def columns(path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_a_version_1_sqlite_store_is_migrated_keeping_its_history_and_order(tmp_path):
    path = tmp_path / "old.sqlite"
    v1_store(path)
    assert "seq" not in columns(path, "requests")

    with LabelStore(path) as store:
        assert store.get_meta("schema_version") == SCHEMA_VERSION == 3
        assert store.verify() is None  # the migration chained the old answers
        assert store.get_meta("run_id") == "run-7"
        assert [(a.item_id, a.label, a.kind, a.annotator, a.round, a.cost)
                for a in store.answers()] == [
            ("m", 1, "label", "ann1", 0, None),
            ("a", None, "skip", "ann2", 0, 2.5),
            ("m", 0, "label", "ann2", 1, None),
        ]
        # requests and assignments keep the order they were written in (not alphabetical)
        assert store.requests(1) == [("z", 0.9), ("a", 0.5), ("m", None)]
        assert store.requested_items(before_round=3) == ["z", "a", "m", "b"]
        assert store.assignments(1) == {"z": ["ann2", "ann1"], "a": ["ann1"]}
        assert store.completed_rounds() == {1: {"n_labeled": 3, "metrics": {"accuracy": 0.5}}}
        # the migrated store works as a new one: keys still unique, new rows after the old ones
        store.record_requests(1, ["z", "q"], [0.0, 0.2])
        store.record_assignments(1, {"a": ["ann1", "ann3"]})
        assert store.requests(1) == [("z", 0.9), ("a", 0.5), ("m", None), ("q", 0.2)]
        assert store.assignments(1) == {"z": ["ann2", "ann1"], "a": ["ann1", "ann3"]}
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store._conn.execute("DELETE FROM answers")
    assert columns(path, "requests")[0] == columns(path, "assignments")[0] == "seq"


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    v1_store(path)
    real_step = migrations.MIGRATIONS["sqlite", 1]

    def interrupted(conn):
        real_step(conn)  # every table rebuilt ...
        raise OSError("disk full")  # ... then the migration fails before committing

    monkeypatch.setitem(migrations.MIGRATIONS, ("sqlite", 1), interrupted)
    with pytest.raises(OSError, match="disk full"):
        LabelStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    assert conn.execute("SELECT COUNT(*) FROM requests").fetchone() == (4,)
    conn.close()
    assert "seq" not in columns(path, "requests")

    monkeypatch.setitem(migrations.MIGRATIONS, ("sqlite", 1), real_step)
    with LabelStore(path) as store:
        assert store.requests(1) == [("z", 0.9), ("a", 0.5), ("m", None)]


def test_a_store_with_no_migration_path_is_refused(label_store_url, monkeypatch):
    open_store(label_store_url).close()
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match=f"no .* migration from version {SCHEMA_VERSION}"):
        open_store(label_store_url)


# ------------------------------------------------------------------------------ locations


def test_url_forms_name_the_backend():
    assert parse_target("runs/l.sqlite").backend == parse_target("sqlite:///l.db").backend == "sqlite"
    assert parse_target("sqlite:///runs/l.db").display == "runs/l.db"
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        assert parse_target(url).url.drivername == "postgresql+psycopg"
    shown = parse_target("postgresql://ann:secret@h:5433/db?schema=run_1")
    assert shown.schema == "run_1" and "secret" not in shown.display
    assert shown.display == "postgresql+psycopg://ann:***@h:5433/db?schema=run_1"
    with pytest.raises(ValueError, match="unsupported label store URL scheme 'mysql'"):
        parse_target("mysql://u@h/db")
    with pytest.raises(ValueError, match="not a plain SQL name"):
        parse_target('postgresql://u@h/db?schema=x";drop')


def test_sqlite_store_exists_and_is_removed(tmp_path):
    path = tmp_path / "gone.sqlite"
    assert not store_exists(path)
    with LabelStore(path) as store:
        store.append(Answer("a", 1), round=0)
    assert store_exists(path) and store_exists(f"sqlite:///{path}")
    remove_store(path)
    assert not store_exists(path) and not list(tmp_path.iterdir())


def test_postgres_schemas_hold_separate_stores(postgres_server):
    url = postgres_server.create_database("schemas")
    first, second = open_store(f"{url}?schema=run_a"), open_store(f"{url}?schema=run_b")
    first.append(Answer("a", 1), round=0)
    second.append(Answer("b", 2), round=0)
    assert first.current_labels() == {"a": 1} and second.current_labels() == {"b": 2}
    assert not store_exists(url)  # nothing in the default schema
    first.close()
    second.close()
    remove_store(f"{url}?schema=run_a")
    assert not store_exists(f"{url}?schema=run_a") and store_exists(f"{url}?schema=run_b")
    with open_store(f"{url}?schema=run_a") as fresh:
        assert len(fresh) == 0
