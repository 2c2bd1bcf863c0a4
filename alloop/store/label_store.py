"""The label store: an append-only SQLite log of every answer, the loop's source of truth.

Each answer is committed in its own transaction before anything uses it (WAL mode, so readers
never block the writer). Rows are never updated or deleted — triggers refuse it — so a later
label for an item (a relabel, a second annotator) adds a row and the history stays. The pool
is rebuilt from this log on resume.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oracles.base import Answer

SCHEMA_VERSION = 1

_SCHEMA = """
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
"""


def _locked(method):
    """Run a LabelStore method under the store's lock."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value)


@dataclass(frozen=True)
class StoredAnswer:
    """One row of the answer log."""

    seq: int
    item_id: str
    label: Any
    kind: str
    annotator: str
    round: int
    cost: float | None
    created_at: float


class LabelStore:
    """Append-only SQLite store of answers, with round markers and run metadata.

    Parameters
    ----------
    path : str or Path
        The database file (created with its parent folder). ``":memory:"`` for tests.

    Examples
    --------
    >>> store = LabelStore(":memory:")
    >>> _ = store.append(Answer("item-1", 3, annotator="ann"), round=0)
    >>> store.current_labels()
    {'item-1': 3}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the loop and the threads of annotators' oracles; the lock
        # serialises its use (each answer is still its own transaction).
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(
                f"label store {self.path} has schema version {version}; this alloop reads "
                f"version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({self.path!r})"

    # ----------------------------------------------------------------- meta
    @_locked
    def get_meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    @_locked
    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # ----------------------------------------------------------------- answers
    @_locked
    def append(self, answer: Answer, round: int) -> int:
        """Commit one answer durably; return its sequence number."""
        cur = self._conn.execute(
            "INSERT INTO answers (item_id, label, kind, annotator, round, cost, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(answer.item_id),
                _to_json(answer.label) if answer.kind == "label" else None,
                answer.kind,
                answer.annotator,
                int(round),
                answer.cost,
                time.time(),
            ),
        )
        return int(cur.lastrowid)

    def extend(self, answers: Iterable[Answer], round: int) -> list[int]:
        """Commit answers one by one (each its own transaction)."""
        return [self.append(a, round) for a in answers]

    @_locked
    def answers(self, round: int | None = None, kind: str | None = None) -> list[StoredAnswer]:
        """The log in commit order, optionally filtered by round and kind."""
        sql = "SELECT seq, item_id, label, kind, annotator, round, cost, created_at FROM answers"
        where, args = [], []
        if round is not None:
            where.append("round = ?")
            args.append(int(round))
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [
            StoredAnswer(r[0], r[1], None if r[2] is None else json.loads(r[2]), *r[3:])
            for r in rows
        ]

    def current_labels(self, max_round: int | None = None, rule: str = "latest") -> dict[str, Any]:
        """item id → its label aggregated over the log (rounds ≤ ``max_round``).

        ``rule`` is ``"latest"`` (each item's most recent vote; a later skip or unsure by the same
        annotator withdraws their label), ``"majority"`` or ``"dawid-skene"`` (see
        :mod:`alloop.aggregation`). The raw answers are never changed.
        """
        from alloop.aggregation import dawid_skene, latest_label, majority_vote

        log = [a for a in self.answers() if max_round is None or a.round <= max_round]
        if rule == "latest":
            return latest_label(log)
        if rule == "majority":
            return majority_vote(log)
        if rule == "dawid-skene":
            return dict(dawid_skene(log).labels) if any(a.kind == "label" for a in log) else {}
        raise ValueError(f"unknown label rule {rule!r}; expected latest, majority or dawid-skene")

    @_locked
    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    # ----------------------------------------------------------------- requests
    @_locked
    def record_requests(
        self, round: int, item_ids: Iterable[str], scores: Iterable[float | None]
    ) -> None:
        """Persist a round's queries before anyone is asked (idempotent per (round, item))."""
        now = time.time()
        rows = [(int(round), str(i), None if s is None else float(s), now)
                for i, s in zip(item_ids, scores, strict=True)]
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR IGNORE INTO requests (round, item_id, score, requested_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    @_locked
    def record_assignments(self, round: int, assignment: dict[str, Iterable[str]]) -> None:
        """Persist which annotators an item of a round was given to, before they are asked."""
        now = time.time()
        rows = [(int(round), str(i), str(a), now) for i, people in assignment.items() for a in people]
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR IGNORE INTO assignments (round, item_id, annotator, assigned_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    @_locked
    def assignments(self, round: int) -> dict[str, list[str]]:
        """item id → annotators it was assigned to in a round."""
        out: dict[str, list[str]] = {}
        for item, annotator in self._conn.execute(
            "SELECT item_id, annotator FROM assignments WHERE round = ? ORDER BY rowid", (int(round),)
        ):
            out.setdefault(item, []).append(annotator)
        return out

    @_locked
    def requested_items(self, before_round: int) -> list[str]:
        """Distinct items requested in rounds before ``before_round``, in request order."""
        rows = self._conn.execute(
            "SELECT item_id FROM requests WHERE round < ? GROUP BY item_id ORDER BY MIN(rowid)",
            (int(before_round),),
        ).fetchall()
        return [r[0] for r in rows]

    @_locked
    def requests(self, round: int) -> list[tuple[str, float | None]]:
        """(item id, score) of a round's queries, in the order they were selected."""
        return self._conn.execute(
            "SELECT item_id, score FROM requests WHERE round = ? ORDER BY rowid", (int(round),)
        ).fetchall()

    # ----------------------------------------------------------------- rounds
    @_locked
    def complete_round(self, round: int, n_labeled: int, metrics: dict[str, float]) -> None:
        """Mark a round finished (after its answers are stored and tracked)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO rounds (round, n_labeled, metrics, completed_at) "
            "VALUES (?, ?, ?, ?)",
            (int(round), int(n_labeled), json.dumps(metrics), time.time()),
        )

    @_locked
    def completed_rounds(self) -> dict[int, dict[str, Any]]:
        """round → {"n_labeled", "metrics"} for every finished round."""
        rows = self._conn.execute(
            "SELECT round, n_labeled, metrics FROM rounds ORDER BY round"
        ).fetchall()
        return {r[0]: {"n_labeled": r[1], "metrics": json.loads(r[2])} for r in rows}
