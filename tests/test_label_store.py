import sqlite3

import pytest

from alloop.store import LabelStore
from oracles import Answer


def test_answers_are_durable_and_history_is_kept(tmp_path):
    path = tmp_path / "labels.sqlite"
    store = LabelStore(path)
    store.append(Answer("a", 1, annotator="ann1"), round=0)
    store.append(Answer("b", kind="skip", annotator="ann1"), round=0)
    store.append(Answer("a", 2, annotator="ann2"), round=1)  # a relabel adds a row
    store.close()

    # A second connection (as after a crash) sees every committed answer.
    reopened = LabelStore(path)
    assert [(a.item_id, a.label, a.kind) for a in reopened.answers()] == [
        ("a", 1, "label"),
        ("b", None, "skip"),
        ("a", 2, "label"),
    ]
    assert reopened.current_labels() == {"a": 2}
    assert reopened.current_labels(max_round=0) == {"a": 1}
    assert reopened._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_refuses_updates_and_deletes(tmp_path):
    store = LabelStore(tmp_path / "s.sqlite")
    store.append(Answer("a", 1), round=0)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("UPDATE answers SET label = '5'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("DELETE FROM answers")
    assert store.current_labels() == {"a": 1}


def test_label_types_round_trip(tmp_path):
    store = LabelStore(tmp_path / "s.sqlite")
    import numpy as np

    for i, label in enumerate([np.int64(3), "cat", 2.5, True]):
        store.append(Answer(str(i), label), round=0)
    assert list(store.current_labels().values()) == [3, "cat", 2.5, True]


def test_rounds_and_requests(tmp_path):
    store = LabelStore(tmp_path / "s.sqlite")
    store.record_requests(1, ["x", "y"], [0.9, 0.1])
    store.record_requests(1, ["x", "y"], [0.9, 0.1])  # idempotent on re-run after a crash
    assert store.requests(1) == [("x", 0.9), ("y", 0.1)]
    store.complete_round(1, 12, {"accuracy": 0.5})
    assert store.completed_rounds() == {1: {"n_labeled": 12, "metrics": {"accuracy": 0.5}}}


def test_schema_version_mismatch_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    LabelStore(path).set_meta("schema_version", 99)
    with pytest.raises(RuntimeError, match="schema version 99"):
        LabelStore(path)
