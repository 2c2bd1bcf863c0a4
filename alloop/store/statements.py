"""The SQL the label store runs, the same on SQLite and PostgreSQL unless keyed by backend."""

from __future__ import annotations

from sqlalchemy import text

ANSWER_COLUMNS = "seq, item_id, label, kind, annotator, round, cost, created_at"
INSERT_ANSWER = text(
    "INSERT INTO answers (item_id, label, kind, annotator, round, cost, created_at, hash) "
    "VALUES (:item_id, :label, :kind, :annotator, :round, :cost, :created_at, :hash) RETURNING seq"
)
LAST_HASH = text("SELECT hash FROM answers ORDER BY seq DESC LIMIT 1")
# Holds other appends to this store (not readers) until this one commits, so an identity value
# taken earlier is never committed later. An advisory lock keyed by the answers table's oid
# (one per store, even with many schemas in a database) rather than LOCK TABLE: it needs no
# privilege beyond INSERT, and does not wait on autovacuum.
PG_SERIALISE_APPENDS = "SELECT pg_advisory_xact_lock('answers'::regclass::oid::bigint)"
# Requests and assignments are recorded once per key. PostgreSQL: ON CONFLICT DO NOTHING, race
# free. SQLite: its BEFORE INSERT trigger refuses an existing key (so REPLACE cannot rewrite a
# row), which would refuse DO NOTHING's conflict too; so skip the existing key in the statement,
# race free as SQLite writes one transaction at a time.
INSERT_ONCE = {
    ("postgresql", "requests"): text(
        "INSERT INTO requests (round, item_id, score, requested_at) "
        "VALUES (:round, :item_id, :score, :at) ON CONFLICT (round, item_id) DO NOTHING"),
    ("postgresql", "assignments"): text(
        "INSERT INTO assignments (round, item_id, annotator, assigned_at) "
        "VALUES (:round, :item_id, :annotator, :at) "
        "ON CONFLICT (round, item_id, annotator) DO NOTHING"),
    ("sqlite", "requests"): text(
        "INSERT INTO requests (round, item_id, score, requested_at) "
        "SELECT :round, :item_id, :score, :at WHERE NOT EXISTS "
        "(SELECT 1 FROM requests WHERE round = :round AND item_id = :item_id)"),
    ("sqlite", "assignments"): text(
        "INSERT INTO assignments (round, item_id, annotator, assigned_at) "
        "SELECT :round, :item_id, :annotator, :at WHERE NOT EXISTS (SELECT 1 FROM assignments "
        "WHERE round = :round AND item_id = :item_id AND annotator = :annotator)"),
}
COMPLETE_ROUND = text(
    "INSERT INTO rounds (round, n_labeled, metrics, completed_at) "
    "VALUES (:round, :n_labeled, :metrics, :at)"
)
SET_META = text(
    "INSERT INTO meta (key, value) VALUES (:key, :value) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
