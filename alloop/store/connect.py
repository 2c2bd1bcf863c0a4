"""Where a label store lives: a file path or a database URL, and the engine that reaches it.

Two backends, one set of queries:

- **SQLite** (the default): a path such as ``runs/labels.sqlite``, ``":memory:"`` or a
  ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` URL. One connection per store,
  shared by its threads under a lock, in WAL mode with ``synchronous=FULL``.
- **PostgreSQL**: ``postgresql://user[:password]@host[:port]/database`` (``postgres://`` and
  ``postgresql+psycopg://`` too; a bare ``postgresql://`` means the psycopg 3 driver). A pool of
  connections, one per thread at a time. ``?schema=name`` keeps the store in its own schema
  (created on first use), so one database can hold many stores.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

#: URL schemes of PostgreSQL; the ones without a driver get psycopg 3.
_POSTGRES_SCHEMES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class StoreTarget:
    """A parsed store location.

    Attributes
    ----------
    backend : {"sqlite", "postgresql"}
    url : sqlalchemy.engine.URL
        What the engine connects to (``schema`` taken out of the query).
    schema : str or None
        PostgreSQL only: the schema holding the store's tables.
    """

    backend: str
    url: URL
    schema: str | None = None

    @property
    def display(self) -> str:
        """The location for messages: the file path, or the URL without its password."""
        if self.backend == "sqlite":
            return self.url.database or ":memory:"
        shown = self.url.render_as_string(hide_password=True)
        return f"{shown}?schema={self.schema}" if self.schema else shown


def parse_target(target: str | Path) -> StoreTarget:
    """Read a path or URL as a :class:`StoreTarget`.

    Raises
    ------
    ValueError
        For a URL of another database, or a bad ``schema`` name.

    Examples
    --------
    >>> parse_target("postgresql://ann@db.lab:5432/labels?schema=run1").url.drivername
    'postgresql+psycopg'
    >>> parse_target("runs/labels.sqlite").backend
    'sqlite'
    """
    if isinstance(target, Path) or "://" not in str(target):
        return StoreTarget("sqlite", URL.create("sqlite", database=str(target)))
    url = make_url(str(target))
    scheme = url.drivername
    if scheme.split("+")[0] == "sqlite":
        return StoreTarget("sqlite", url.set(drivername="sqlite"))
    if scheme.split("+")[0] not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported label store URL scheme {scheme!r} in {url.render_as_string()!r}; use a "
            "file path, sqlite:///path or postgresql://user@host/database"
        )
    url = url.set(drivername=_POSTGRES_SCHEMES.get(scheme, scheme))
    schema = url.query.get("schema")
    if schema is not None:
        if isinstance(schema, tuple) or not _SCHEMA_NAME.match(schema):
            raise ValueError(
                f"schema={schema!r} in the label store URL is not a plain SQL name; use letters, "
                "digits and underscores, starting with a letter"
            )
        url = url.difference_update_query(["schema"])
    return StoreTarget("postgresql", url, schema)


def create_engine(target: StoreTarget) -> Engine:
    """An engine for the target, set up for the store's durability and transactions."""
    if target.backend == "sqlite":
        return _sqlite_engine(target)
    connect_args = {}
    if target.schema:
        connect_args["options"] = f"-c search_path={target.schema}"
    # pool_pre_ping: a pooled connection the server dropped (restart, idle timeout) is replaced
    # instead of failing the next answer.
    return sa.create_engine(target.url, connect_args=connect_args, pool_pre_ping=True)


def store_lock(target: StoreTarget) -> AbstractContextManager:
    """What serialises a store's use across threads: the one SQLite connection needs a lock;
    PostgreSQL gives each thread its own pooled connection."""
    return threading.RLock() if target.backend == "sqlite" else nullcontext()


def _sqlite_engine(target: StoreTarget) -> Engine:
    path = target.url.database or ":memory:"
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # One connection (StaticPool) for the store's life: ":memory:" must be one, and a file has
    # one writer at a time anyway. Other stores and processes wait up to 30 s for the lock.
    engine = sa.create_engine(
        target.url.set(database=path),
        poolclass=StaticPool,
        connect_args={"timeout": 30.0, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn, _record) -> None:
        # Autocommit at the driver, BEGIN issued below: the sqlite3 module's own implicit
        # transactions skip DDL, which would make migrations non-atomic.
        dbapi_conn.isolation_level = None
        _set_wal(dbapi_conn)
        dbapi_conn.execute("PRAGMA synchronous=FULL")

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _set_wal(dbapi_conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite answers "database is locked"
    # at once rather than through the busy timeout: retry while other openers hold it.
    deadline = time.monotonic() + timeout
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
