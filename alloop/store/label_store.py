"""The label store: an append-only log of every answer, the loop's source of truth.

It lives in a SQLite file (the default) or a PostgreSQL database, chosen by :func:`open_store`'s
target (see :mod:`alloop.store.connect`); the same queries run on both. Guarantees, on either:

- each answer is committed in its own transaction before :meth:`LabelStore.append` returns, so
  anything that uses it (the model, a tracker, a progress line) sees a durable answer;
- history (answers, requests, assignments, completed rounds) is never updated, deleted or
  replaced — database triggers refuse it — so a later label for an item (a relabel, a second
  annotator) adds a row and the history stays;
- each answer carries a hash chained to the previous one's: :meth:`LabelStore.verify` finds a
  row changed behind the triggers' back (see :mod:`alloop.store.chain`);
- one process writes a store at a time: a loop takes the writer lease
  (:meth:`LabelStore.take_lease`, :mod:`alloop.store.lease`) and a second is refused, naming
  the first;
- ``seq`` increases in commit order: a reader never sees an answer appear before one it has
  already read (on PostgreSQL appends to a store take turns, through an advisory lock held for
  their short transaction, as SQLite's single writer does);
- requests and assignments are recorded once per key however many writers race
  (``INSERT ... ON CONFLICT DO NOTHING`` on their unique keys);
- each store may be shared by threads, and many stores (threads, processes, machines on
  PostgreSQL) may write one database at once.

The pool is rebuilt from this log on resume.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from alloop.aggregation import aggregate
from alloop.records import Answer
from alloop.store.chain import GENESIS, ChainBrokenError, answer_hash, first_broken
from alloop.store.connect import create_engine, parse_target, store_lock
from alloop.store.lease import WriterLease
from alloop.store.migrations import prepare
from alloop.store.statements import (
    ANSWER_COLUMNS,
    COMPLETE_ROUND,
    INSERT_ANSWER,
    INSERT_ONCE,
    LAST_HASH,
    PG_SERIALISE_APPENDS,
    SET_META,
)


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value)


class StoreUnreadableError(ValueError):
    """The store's database cannot be read: truncated, corrupt, or not a database."""


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
    """Append-only store of answers, with round markers and run metadata.

    Parameters
    ----------
    target : str or Path
        A SQLite file (created with its parent folder), ``":memory:"``, or a database URL:
        ``sqlite:///path``, ``postgresql://user@host:port/database[?schema=name]``. Opening a
        store made by an older alloop migrates it; one made by a newer alloop is refused with
        :class:`~alloop.store.migrations.SchemaVersionError`.

    Attributes
    ----------
    backend : {"sqlite", "postgresql"}
    path : str
        The location, for messages (a URL without its password).

    Examples
    --------
    >>> store = LabelStore(":memory:")
    >>> _ = store.append(Answer("item-1", 3, annotator="ann"), round=0)
    >>> store.current_labels()
    {'item-1': 3}
    """

    def __init__(self, target: str | Path) -> None:
        where = parse_target(target)
        self.backend = where.backend
        self.path = where.display
        self.file = (where.url.database or ":memory:") if where.backend == "sqlite" else None
        if self.file == ":memory:":
            self.file = None
        self._engine = create_engine(where)
        self._writer = self._engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        self._lock = store_lock(where)
        self._lease = WriterLease(self)
        try:
            with self._lock:
                prepare(self._engine, self.backend, self.path, where.schema)
                if self.backend == "sqlite":
                    with self._engine.connect() as conn:
                        self._sqlite = conn.connection.driver_connection
        except DatabaseError as exc:  # e.g. a truncated or foreign file: nothing was written
            self._engine.dispose()
            raise StoreUnreadableError(
                f"label store {self.path} cannot be read ({getattr(exc, 'orig', exc)}): it is "
                "truncated, corrupt or not an alloop store. Nothing was changed; restore it from a "
                "backup, or start a new run with another store path"
            ) from None
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        """Give back the writer lease (if held) and close the connections."""
        try:
            while self._lease.held:
                self._lease.release()
        finally:
            self._engine.dispose()

    # ----------------------------------------------------------------- writer lease
    def take_lease(self) -> None:
        """Become the store's one writer, or raise
        :class:`~alloop.store.lease.StoreLeaseError` naming the process that is.

        Re-entrant; given back by :meth:`release_lease` (as often as taken) or :meth:`close`.
        A loop takes it before it writes (and ``alloop run`` before it opens MLflow); readers
        need none.

        Examples
        --------
        >>> store = LabelStore(":memory:")
        >>> store.take_lease(); store.holds_lease
        True
        >>> store.close()
        """
        self._lease.acquire()

    def release_lease(self) -> None:
        self._lease.release()

    @property
    def holds_lease(self) -> bool:
        return self._lease.held

    # ----------------------------------------------------------------- tamper evidence
    def verify(self) -> tuple[int, str] | None:
        """Recompute the answers' hash chain: the first row that does not match, as
        ``(seq, reason)``, or None when every row does.

        Examples
        --------
        >>> store = LabelStore(":memory:")
        >>> _ = store.append(Answer("a", 1), round=0)
        >>> store.verify() is None
        True
        """
        rows = self._read(f"SELECT {ANSWER_COLUMNS}, hash FROM answers ORDER BY seq")
        return first_broken(rows)

    def require_intact(self) -> None:
        """Raise :class:`~alloop.store.chain.ChainBrokenError` naming the first answer that
        does not match the hash chain (what ``--resume`` does before it trains)."""
        broken = self.verify()
        if broken is not None:
            seq, reason = broken
            raise ChainBrokenError(
                f"label store {self.path} fails its hash chain at answer seq {seq}: {reason}. "
                "It is not trained on. See which rows with `alloop labels verify STORE`; restore "
                "the store from a backup, or start a new store from `alloop labels export`."
            )

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({self.path!r})"

    @property
    def _conn(self) -> Any:
        """SQLite only: the store's raw ``sqlite3`` connection, for diagnostics such as
        ``PRAGMA integrity_check``. Not locked: do not write through it."""
        if self.backend != "sqlite":
            raise AttributeError(f"{self.backend} stores have no raw sqlite3 connection")
        return self._sqlite

    def _read(self, sql: Any, **params: Any) -> list[Any]:
        with self._lock, self._engine.connect() as conn:
            return conn.execute(text(sql) if isinstance(sql, str) else sql, params).fetchall()

    # ----------------------------------------------------------------- meta
    def get_meta(self, key: str) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = :key", key=key)
        return json.loads(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock, self._engine.begin() as conn:
            conn.execute(SET_META, {"key": key, "value": json.dumps(value)})

    # ----------------------------------------------------------------- answers
    def append(self, answer: Answer, round: int) -> int:
        """Commit one answer durably; return its sequence number."""
        row = {
            "item_id": str(answer.item_id),
            "label": _to_json(answer.label) if answer.kind == "label" else None,
            "kind": answer.kind,
            "annotator": answer.annotator,
            "round": int(round),
            "cost": answer.cost,
            "created_at": time.time(),
        }
        # SQLite: BEGIN IMMEDIATE takes the write lock before the last hash is read, so no other
        # connection appends between the read and the insert.
        with self._lock, self._writer.begin() as conn:
            if self.backend == "postgresql":
                conn.exec_driver_sql(PG_SERIALISE_APPENDS)
                if self._lease.held:
                    self._lease.check(conn)
            last = conn.execute(LAST_HASH).scalar()
            row["hash"] = answer_hash(last or GENESIS, row["item_id"], row["label"], row["kind"],
                                      row["annotator"], row["round"], row["cost"],
                                      row["created_at"])
            seq = conn.execute(INSERT_ANSWER, row).scalar_one()
        return int(seq)

    def extend(self, answers: Iterable[Answer], round: int) -> list[int]:
        """Commit answers one by one (each its own transaction)."""
        return [self.append(a, round) for a in answers]

    def answers(
        self, round: int | None = None, kind: str | None = None, max_round: int | None = None
    ) -> list[StoredAnswer]:
        """The log in commit order, optionally filtered by round (or rounds ≤ ``max_round``)
        and kind."""
        where, params = [], {}
        if round is not None:
            where.append("round = :round")
            params["round"] = int(round)
        if max_round is not None:
            where.append("round <= :max_round")
            params["max_round"] = int(max_round)
        if kind is not None:
            where.append("kind = :kind")
            params["kind"] = kind
        sql = f"SELECT {ANSWER_COLUMNS} FROM answers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY seq", **params)
        return [
            StoredAnswer(r[0], r[1], None if r[2] is None else json.loads(r[2]), *r[3:])
            for r in rows
        ]

    def current_labels(self, max_round: int | None = None, rule: str = "latest") -> dict[str, Any]:
        """item id → its label under ``rule`` over the log (rounds ≤ ``max_round``).

        A convenience for readers: ``aggregate(store.answers(max_round=...), rule)``; the store
        itself decides nothing (see :func:`alloop.aggregation.aggregate` for the rules).
        """
        return aggregate(self.answers(max_round=max_round), rule)

    def __len__(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM answers")[0][0])

    # ----------------------------------------------------------------- requests
    def record_requests(
        self, round: int, item_ids: Iterable[str], scores: Iterable[float | None]
    ) -> None:
        """Persist a round's queries before anyone is asked (idempotent per (round, item))."""
        now = time.time()
        rows = [{"round": int(round), "item_id": str(i), "score": None if s is None else float(s),
                 "at": now} for i, s in zip(item_ids, scores, strict=True)]
        if rows:
            with self._lock, self._engine.begin() as conn:
                conn.execute(INSERT_ONCE[self.backend, "requests"], rows)

    def record_assignments(self, round: int, assignment: dict[str, Iterable[str]]) -> None:
        """Persist which annotators an item of a round was given to, before they are asked."""
        now = time.time()
        rows = [{"round": int(round), "item_id": str(i), "annotator": str(a), "at": now}
                for i, people in assignment.items() for a in people]
        if rows:
            with self._lock, self._engine.begin() as conn:
                conn.execute(INSERT_ONCE[self.backend, "assignments"], rows)

    def assignments(self, round: int) -> dict[str, list[str]]:
        """item id → annotators it was assigned to in a round."""
        out: dict[str, list[str]] = {}
        for item, annotator in self._read(
            "SELECT item_id, annotator FROM assignments WHERE round = :round ORDER BY seq",
            round=int(round),
        ):
            out.setdefault(item, []).append(annotator)
        return out

    def requested_items(self, before_round: int) -> list[str]:
        """Distinct items requested in rounds before ``before_round``, in request order."""
        rows = self._read(
            "SELECT item_id FROM requests WHERE round < :round GROUP BY item_id ORDER BY MIN(seq)",
            round=int(before_round),
        )
        return [r[0] for r in rows]

    def requests(self, round: int) -> list[tuple[str, float | None]]:
        """(item id, score) of a round's queries, in the order they were selected."""
        rows = self._read(
            "SELECT item_id, score FROM requests WHERE round = :round ORDER BY seq", round=int(round)
        )
        return [(r[0], r[1]) for r in rows]

    # ----------------------------------------------------------------- rounds
    def complete_round(self, round: int, n_labeled: int, metrics: dict[str, float]) -> None:
        """Mark a round finished (after its answers are stored and tracked). Once: a completed
        round is history, so completing it again raises ValueError."""
        with self._lock, self._engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM rounds WHERE round = :r"), {"r": int(round)}).first():
                raise ValueError(f"round {round} of label store {self.path} is already complete; "
                                 "completed rounds are history and are not rewritten")
            conn.execute(COMPLETE_ROUND, {"round": int(round), "n_labeled": int(n_labeled),
                                           "metrics": json.dumps(metrics), "at": time.time()})

    def completed_rounds(self) -> dict[int, dict[str, Any]]:
        """round → {"n_labeled", "metrics"} for every finished round."""
        rows = self._read("SELECT round, n_labeled, metrics FROM rounds ORDER BY round")
        return {r[0]: {"n_labeled": r[1], "metrics": json.loads(r[2])} for r in rows}


def open_store(target: str | Path) -> LabelStore:
    """Open (creating or migrating) the label store at a path or database URL.

    Parameters
    ----------
    target : str or Path
        A file path or ``sqlite:///path`` → SQLite; ``postgresql://user@host/db`` (optionally
        ``?schema=name``) → PostgreSQL through SQLAlchemy and psycopg 3.

    Examples
    --------
    >>> store = open_store(":memory:")
    >>> store.backend
    'sqlite'
    """
    return LabelStore(target)
