"""Append-only history, the hash chain and the least-privilege PostgreSQL role, on real
databases (``label_store_url`` runs each test on SQLite and on a throwaway PostgreSQL server)."""

import sqlite3
import subprocess
import sys

import psycopg
import pytest

from alloop.records import Answer
from alloop.store import ChainBrokenError, open_store
from alloop.store.chain import GENESIS, answer_hash

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def raw(url: str):
    """A plain driver connection, bypassing alloop: what the database itself enforces."""
    if url.startswith("postgresql://"):
        return psycopg.connect(url, autocommit=True)
    return sqlite3.connect(url, isolation_level=None)


def filled(url: str):
    store = open_store(url)
    store.append(Answer("a", 1, annotator="ann1"), round=0)
    store.append(Answer("b", 0, annotator="ann2", cost=2), round=0)
    store.record_requests(1, ["a", "b"], [0.5, 0.25])
    store.record_assignments(1, {"a": ["ann1", "ann2"]})
    store.complete_round(0, 2, {"accuracy": 0.5})
    return store


def snapshot(conn) -> dict:
    return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ("answers", "requests", "assignments", "rounds")}


# Statements that would rewrite or remove history, per table, as a user could type them.
SQLITE_ATTACKS = {
    "answers": [
        "UPDATE answers SET label = '5'",
        "DELETE FROM answers",
        "REPLACE INTO answers (seq, item_id, label, kind, annotator, round, cost, created_at, hash) "
        "SELECT seq, item_id, '7', kind, annotator, round, cost, created_at, hash FROM answers WHERE seq = 1",
        "INSERT OR REPLACE INTO answers (seq, item_id, label, kind, annotator, round, cost, created_at, hash) "
        "VALUES (1, 'a', '7', 'label', 'ann1', 0, NULL, 1.0, 'x')",
        "INSERT INTO answers (seq, item_id, label, kind, annotator, round, cost, created_at, hash) "
        "VALUES (1, 'a', '7', 'label', 'ann1', 0, NULL, 1.0, 'x') "
        "ON CONFLICT (seq) DO UPDATE SET label = excluded.label",
    ],
    "requests": [
        "UPDATE requests SET score = 9",
        "DELETE FROM requests",
        "REPLACE INTO requests (round, item_id, score, requested_at) VALUES (1, 'a', 9, 0)",
        "INSERT OR REPLACE INTO requests (seq, round, item_id, score, requested_at) "
        "VALUES (1, 7, 'q', 9, 0)",
        "INSERT INTO requests (round, item_id, score, requested_at) VALUES (1, 'a', 9, 0) "
        "ON CONFLICT (round, item_id) DO UPDATE SET score = 9",
    ],
    "assignments": [
        "UPDATE assignments SET annotator = 'mallory'",
        "DELETE FROM assignments",
        "REPLACE INTO assignments (round, item_id, annotator, assigned_at) VALUES (1, 'a', 'ann1', 0)",
        "INSERT OR REPLACE INTO assignments (seq, round, item_id, annotator, assigned_at) "
        "VALUES (1, 9, 'q', 'mallory', 0)",
    ],
    "rounds": [
        "UPDATE rounds SET metrics = '{}'",
        "DELETE FROM rounds",
        "REPLACE INTO rounds (round, n_labeled, metrics, completed_at) VALUES (0, 99, '{}', 0)",
        "INSERT OR REPLACE INTO rounds (round, n_labeled, metrics, completed_at) VALUES (0, 99, '{}', 0)",
        "INSERT INTO rounds (round, n_labeled, metrics, completed_at) VALUES (0, 99, '{}', 0) "
        "ON CONFLICT (round) DO UPDATE SET n_labeled = 99",
    ],
}

PG_ATTACKS = {
    "answers": [
        "UPDATE answers SET label = '5'",
        "DELETE FROM answers",
        "TRUNCATE answers",
        "INSERT INTO answers (item_id, label, kind, annotator, round, cost, created_at, hash) "
        "OVERRIDING SYSTEM VALUE SELECT item_id, '7', kind, annotator, round, cost, created_at, hash "
        "FROM answers WHERE seq = 1 ON CONFLICT (seq) DO UPDATE SET label = excluded.label",
    ],
    "requests": [
        "UPDATE requests SET score = 9",
        "DELETE FROM requests",
        "TRUNCATE requests",
        "INSERT INTO requests (round, item_id, score, requested_at) VALUES (1, 'a', 9, 0) "
        "ON CONFLICT (round, item_id) DO UPDATE SET score = 9",
    ],
    "assignments": [
        "UPDATE assignments SET annotator = 'mallory'",
        "DELETE FROM assignments",
        "TRUNCATE assignments",
        "INSERT INTO assignments (round, item_id, annotator, assigned_at) VALUES (1, 'a', 'ann1', 0) "
        "ON CONFLICT (round, item_id, annotator) DO UPDATE SET annotator = 'mallory'",
    ],
    "rounds": [
        "UPDATE rounds SET metrics = '{}'",
        "DELETE FROM rounds",
        "TRUNCATE rounds",
        "INSERT INTO rounds (round, n_labeled, metrics, completed_at) VALUES (0, 99, '{}', 0) "
        "ON CONFLICT (round) DO UPDATE SET n_labeled = 99",
    ],
}


def test_every_history_table_refuses_update_delete_replace_and_upsert(label_store_url):
    store = filled(label_store_url)
    conn = raw(label_store_url)
    before = snapshot(conn)
    attacks = PG_ATTACKS if store.backend == "postgresql" else SQLITE_ATTACKS
    for table, statements in attacks.items():
        for statement in statements:
            with pytest.raises((sqlite3.DatabaseError, psycopg.Error),
                               match=f"append-only: {table} rows cannot be"):
                conn.execute(statement)
    assert snapshot(conn) == before
    conn.close()
    assert store.verify() is None
    store.close()


def test_the_hash_chain_is_the_documented_sha256_chain(label_store_url):
    """Recomputed here from the rows alone, as an auditor would, not through the store."""
    store = filled(label_store_url)
    conn = raw(label_store_url)
    rows = conn.execute("SELECT item_id, label, kind, annotator, round, cost, created_at, hash "
                        "FROM answers ORDER BY seq").fetchall()
    previous = GENESIS
    for *fields, stored in rows:
        import hashlib
        import json

        item, label, kind, annotator, round_, cost, created = fields
        text = json.dumps([previous, item, label, kind, annotator, round_,
                           None if cost is None else float(cost), float(created)])
        assert stored == hashlib.sha256(text.encode()).hexdigest() == answer_hash(previous, *fields)
        previous = stored
    conn.close()
    store.close()


def tamper(url: str, statement: str) -> None:
    """Edit history the way someone with the file (or the owner role) could: triggers off."""
    conn = raw(url)
    if url.startswith("postgresql://"):
        conn.execute("ALTER TABLE answers DISABLE TRIGGER USER")
        conn.execute(statement)
        conn.execute("ALTER TABLE answers ENABLE TRIGGER USER")
    else:
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                "AND tbl_name = 'answers'").fetchall()
        for name, _ in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(statement)
        for _, sql in triggers:
            conn.execute(sql)
    conn.close()


@pytest.mark.parametrize("edit, seq", [
    ("UPDATE answers SET label = '0' WHERE seq = 2", 2),
    ("UPDATE answers SET annotator = 'mallory' WHERE seq = 1", 1),
    ("DELETE FROM answers WHERE seq = 2", 3),  # the next row no longer chains
])
def test_an_edit_behind_the_triggers_is_named_by_verify(label_store_url, edit, seq):
    store = open_store(label_store_url)
    for i in range(4):
        store.append(Answer(f"i{i}", i % 2, annotator="ann"), round=0)
    assert store.verify() is None
    store.close()
    tamper(label_store_url, edit)
    with open_store(label_store_url) as store:
        assert store.verify()[0] == seq
        with pytest.raises(ChainBrokenError, match=f"answer seq {seq}"):
            store.require_intact()
    cli = subprocess.run([sys.executable, "-m", "alloop", "labels", "verify", label_store_url],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode == 1
    assert f"answer seq {seq} does not match the hash chain" in " ".join(cli.stderr.split())
    assert "Traceback" not in cli.stderr


def test_verify_passes_an_intact_store(tmp_path):
    url = str(tmp_path / "ok.sqlite")
    filled(url).close()
    cli = subprocess.run([sys.executable, "-m", "alloop", "labels", "verify", url],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "all 2 answers match" in " ".join(cli.stdout.split())


# ------------------------------------------------------------------- least-privilege role


def test_the_writer_role_can_only_read_and_add_history(postgres_server):
    import uuid

    owner_url = postgres_server.create_database(f"roles_{uuid.uuid4().hex[:10]}")
    made = subprocess.run(
        [sys.executable, "-m", "alloop", "store", "init-roles", owner_url, "--writer", "loop_w"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    writer_url = owner_url.replace(f"//{postgres_server.user}@", "//loop_w@")
    assert "loop_w@" in made.stdout.replace("\n", "")

    # what a loop does works as the writer, the lease included
    store = open_store(writer_url)
    store.take_lease()
    store.append(Answer("a", 1), round=0)
    store.record_requests(1, ["a"], [0.5])
    store.record_assignments(1, {"a": ["ann"]})
    store.complete_round(0, 1, {"accuracy": 1.0})
    store.set_meta("run_id", "r1")
    store.release_lease()
    store.close()

    conn = psycopg.connect(writer_url, autocommit=True)
    refused = [
        "ALTER TABLE answers DISABLE TRIGGER USER",
        "ALTER TABLE answers DISABLE TRIGGER answers_append_only",
        "DROP TRIGGER answers_append_only ON answers",
        "DROP FUNCTION alloop_append_only() CASCADE",
        "DROP TABLE answers",
        "UPDATE answers SET label = '0'",
        "DELETE FROM rounds",
        "TRUNCATE requests",
        "ALTER TABLE assignments OWNER TO loop_w",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    conn.close()
    with open_store(owner_url) as store:
        assert store.current_labels() == {"a": 1} and store.verify() is None


# The DDL of schema version 2 on PostgreSQL (alloop before issue 14), as it wrote it.
V2_POSTGRESQL = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE answers (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item_id TEXT NOT NULL, label TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('label', 'skip', 'unsure')), annotator TEXT NOT NULL,
        round INTEGER NOT NULL, cost DOUBLE PRECISION, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX answers_item ON answers (item_id)",
    "CREATE INDEX answers_round ON answers (round)",
    """CREATE TABLE requests (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, round INTEGER NOT NULL,
        item_id TEXT NOT NULL, score DOUBLE PRECISION, annotator TEXT,
        requested_at DOUBLE PRECISION NOT NULL, UNIQUE (round, item_id))""",
    """CREATE TABLE assignments (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, round INTEGER NOT NULL,
        item_id TEXT NOT NULL, annotator TEXT NOT NULL, assigned_at DOUBLE PRECISION NOT NULL,
        UNIQUE (round, item_id, annotator))""",
    """CREATE TABLE rounds (round INTEGER PRIMARY KEY, n_labeled INTEGER NOT NULL,
        metrics TEXT NOT NULL, completed_at DOUBLE PRECISION NOT NULL)""",
    """CREATE FUNCTION answers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION USING MESSAGE = 'the label store is append-only: answers cannot be '
        || CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END; END $$""",
    """CREATE TRIGGER answers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON answers
    FOR EACH STATEMENT EXECUTE FUNCTION answers_append_only()""",
    "INSERT INTO meta VALUES ('schema_version', '2'), ('run_id', '\"run-9\"')",
    "INSERT INTO answers (item_id, label, kind, annotator, round, cost, created_at) VALUES "
    "('m', '1', 'label', 'ann1', 0, NULL, 1.0), ('a', NULL, 'skip', 'ann2', 0, 2.5, 2.0)",
    "INSERT INTO requests (round, item_id, score, requested_at) VALUES (1, 'z', 0.9, 1.0)",
    "INSERT INTO rounds VALUES (0, 1, '{\"accuracy\": 0.5}', 4.0)",
]


def test_a_version_2_postgresql_store_is_migrated_chained_and_guarded(postgres_server):
    import uuid

    url = postgres_server.create_database(f"v2_{uuid.uuid4().hex[:10]}")
    conn = psycopg.connect(url, autocommit=True)
    for statement in V2_POSTGRESQL:
        conn.execute(statement)
    with open_store(url) as store:
        assert store.get_meta("schema_version") == 3 and store.get_meta("run_id") == "run-9"
        assert [(a.item_id, a.label, a.kind, a.cost) for a in store.answers()] == [
            ("m", 1, "label", None), ("a", None, "skip", 2.5)]
        assert store.verify() is None  # the old answers were chained
        store.append(Answer("b", 0), round=1)
        assert store.verify() is None
    for statement in PG_ATTACKS["rounds"] + PG_ATTACKS["answers"][:2]:
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute(statement)
    conn.close()
