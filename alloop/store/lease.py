"""One writer per label store: a lease taken before a loop writes, refused to a second writer.

A lease is a record in the store's ``meta`` table (key ``writer``: a random holder id, host,
PID, run id, since, heartbeat), plus what makes it exclusive:

- **SQLite**: an OS lock (``flock``, through :mod:`filelock`) on ``<store>.lock``, held for the
  lease's life. The OS drops it the moment the holder dies (kill -9, crash, power loss), so a
  dead holder's lease is taken over at once; the record only names the holder in messages.
- **PostgreSQL**: the record alone, written under an advisory transaction lock so two takers
  cannot both win. Its heartbeat is renewed every :data:`HEARTBEAT` seconds; a lease whose
  heartbeat is older than :data:`EXPIRES`, or whose holder is a PID that no longer exists on
  this host, is dead and may be taken over. Every append of a lease holder checks, in the same
  transaction, that the lease is still its own (a holder that stalled past expiry and was
  replaced cannot write).

Readers (``alloop labels export``, ``alloop labels verify``, dashboards) take no lease.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from alloop.store.label_store import LabelStore

#: seconds between heartbeats (PostgreSQL)
HEARTBEAT = 5.0
#: a PostgreSQL lease not renewed for this long is dead
EXPIRES = 30.0
#: seconds a refused SQLite taker waits for the lock's new holder to record itself
SETTLE = 2.0

_KEY = "writer"
_PG_LOCK = "SELECT pg_advisory_xact_lock('meta'::regclass::oid::bigint)"
_READ = text("SELECT value FROM meta WHERE key = 'writer'")
_WRITE = text(
    "INSERT INTO meta (key, value) VALUES ('writer', :value) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


class StoreLeaseError(RuntimeError):
    """Another process holds the store's writer lease (or this one lost it)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def holder_is_dead(record: dict[str, Any], now: float, expires: float = EXPIRES) -> bool:
    """Whether a lease record's holder can no longer be writing: its heartbeat expired, or it
    was a process on this host that no longer exists.

    Examples
    --------
    >>> holder_is_dead({"host": "elsewhere", "pid": 1, "heartbeat": 100.0}, now=200.0)
    True
    >>> holder_is_dead({"host": "elsewhere", "pid": 1, "heartbeat": 190.0}, now=200.0)
    False
    """
    if now - float(record.get("heartbeat", 0.0)) > expires:
        return True
    return record.get("host") == socket.gethostname() and not _alive(int(record.get("pid", -1)))


def describe(record: dict[str, Any] | None, run_id: str | None, now: float) -> str:
    """The holder, for a message: PID, host, run, since when, last heartbeat."""
    if not record or record.get("released"):
        return "another process (it has not recorded itself yet)"
    since = dt.datetime.fromtimestamp(record["since"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    run = record.get("run_id") or run_id
    return (f"PID {record['pid']} on {record['host']}" + (f" (MLflow run {run})" if run else "")
            + f", since {since}, last heartbeat {now - record['heartbeat']:.0f} s ago")


class WriterLease:
    """The writer lease of one open :class:`~alloop.store.label_store.LabelStore`.

    Made by :meth:`LabelStore.take_lease`; re-entrant (the lease is released when every taker
    has released it, or when the store is closed).
    """

    def __init__(self, store: LabelStore) -> None:
        self.store = store
        self.holder = uuid.uuid4().hex
        self.lost = False
        self._count = 0
        self._file_lock: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ records
    def _record(self, since: float) -> dict[str, Any]:
        return {"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(),
                "run_id": self.store.get_meta("run_id"), "since": since, "heartbeat": time.time()}

    def _refusal(self, record: dict[str, Any] | None) -> StoreLeaseError:
        who = describe(record, self.store.get_meta("run_id"), time.time())
        return StoreLeaseError(
            f"label store {self.store.path} is being written by {who}. One process writes a "
            "store at a time: wait for that run to end, or stop it, then continue the store with "
            "`alloop run CONFIG --resume` (or give this run a store of its own: store.path). "
            "Reading it (alloop labels export / verify) needs no lease."
        )

    # ------------------------------------------------------------------ take / give back
    def acquire(self) -> None:
        if self._count:
            self._count += 1
            return
        store = self.store
        if store.backend == "sqlite":
            self._acquire_sqlite()
        else:
            self._acquire_postgresql()
        self._count = 1
        if store.backend == "postgresql":
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="alloop-lease", daemon=True)
            self._thread.start()

    def _acquire_sqlite(self) -> None:
        from filelock import FileLock, Timeout

        path = self.store.file
        if path is not None:
            # thread_local=False: the lease belongs to the store, whichever thread closes it.
            lock = FileLock(f"{path}.lock", timeout=0, thread_local=False)
            try:
                lock.acquire()
            except Timeout:
                raise self._refusal(self._sqlite_holder()) from None
            self._file_lock = lock
        try:
            self.store.set_meta(_KEY, self._record(time.time()))
        except BaseException:
            self._release_file()
            raise

    def _sqlite_holder(self) -> dict[str, Any] | None:
        """The record of whoever holds the OS lock. A record naming a process of this host that
        no longer exists is a dead holder's: the new one took the lock and has not recorded
        itself yet (two takers racing for a dead holder's store), so wait a moment for it."""
        deadline = time.monotonic() + SETTLE
        while True:
            record = self.store.get_meta(_KEY)
            stale = bool(record) and record.get("host") == socket.gethostname() and not _alive(
                int(record.get("pid", -1)))
            if not stale:
                return record
            if time.monotonic() > deadline:
                return None  # named as "another process (it has not recorded itself yet)"
            time.sleep(0.05)

    def _acquire_postgresql(self) -> None:
        now = time.time()
        with self.store._lock, self.store._engine.begin() as conn:
            conn.exec_driver_sql(_PG_LOCK)
            row = conn.execute(_READ).fetchone()
            record = json.loads(row[0]) if row else None
            if record and not record.get("released") and not holder_is_dead(record, now):
                raise self._refusal(record)
            conn.execute(_WRITE, {"value": json.dumps(self._record(now))})

    def _beat(self) -> None:
        since = time.time()
        while not self._stop.wait(HEARTBEAT):
            try:
                with self.store._lock, self.store._engine.begin() as conn:
                    conn.exec_driver_sql(_PG_LOCK)
                    row = conn.execute(_READ).fetchone()
                    record = json.loads(row[0]) if row else {}
                    if record.get("holder") != self.holder:
                        self.lost = True
                        return
                    since = record.get("since", since)
                    conn.execute(_WRITE, {"value": json.dumps(self._record(since))})
            except Exception:  # noqa: BLE001 - the server away: the next beat tries again
                continue

    def check(self, conn: Any) -> None:
        """Inside an append's transaction (PostgreSQL): refuse unless the lease is still ours."""
        row = conn.execute(_READ).fetchone()
        record = json.loads(row[0]) if row else None
        if self.lost or not record or record.get("holder") != self.holder:
            self.lost = True
            raise StoreLeaseError(
                f"label store {self.store.path}: this process lost its writer lease (its "
                f"heartbeat stopped for over {EXPIRES:.0f} s) and {describe(record, None, time.time())} "
                "took over; this run stops writing. Continue with `alloop run CONFIG --resume` "
                "once that one has ended."
            )

    def release(self) -> None:
        if not self._count:
            return
        self._count -= 1
        if self._count:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT + 1)
            self._thread = None
        try:
            if not self.lost:
                record = self.store.get_meta(_KEY) or {}
                if record.get("holder") == self.holder:
                    self.store.set_meta(_KEY, {**record, "released": time.time()})
        finally:
            self._release_file()

    def _release_file(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    @property
    def held(self) -> bool:
        return self._count > 0
