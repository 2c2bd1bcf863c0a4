"""Annotator tokens: random secrets shown once, kept only as SHA-256 hashes in a SQLite file.

A token is 32 random bytes, URL-safe base64 (43 characters). The file holds, per annotator,
the token's hash, when it was created and whether it was revoked; nobody can read a token back
from it. A new token for an annotator replaces their old one (the old one stops working at
once). Every check reads the file, so ``alloop annotate token`` and ``revoke`` take effect on a
running page without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oracles.annotators import annotator_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    annotator  TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""


def token_hash(token: str) -> str:
    """The SHA-256 hex digest a token is stored as."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """One annotator's entry (never the token itself)."""

    annotator: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenStore:
    """Create, check, list and revoke annotator tokens.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created with its folder; readable by its owner only).

    Examples
    --------
    >>> import tempfile
    >>> store = TokenStore(Path(tempfile.mkdtemp()) / "tokens.sqlite")
    >>> token = store.create("ann")
    >>> store.verify(token), store.verify("not-a-token")
    ('ann', None)
    >>> store.revoke("ann")
    True
    >>> store.verify(token) is None
    True
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
        try:
            os.chmod(self.path, 0o600)
        except OSError:  # e.g. a file owned by someone else: leave its mode alone
            pass

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: checks come from the web server's worker threads.
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def create(self, annotator: str) -> str:
        """A new token for ``annotator`` (replacing any earlier one); shown only this once."""
        annotator = annotator_id(annotator)
        token = secrets.token_urlsafe(32)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO tokens (annotator, hash, created_at, revoked_at) VALUES (?, ?, ?, NULL) "
                "ON CONFLICT (annotator) DO UPDATE SET hash = excluded.hash, "
                "created_at = excluded.created_at, revoked_at = NULL",
                (annotator, token_hash(token), time.time()),
            )
        return token

    def revoke(self, annotator: str) -> bool:
        """Revoke ``annotator``'s token; False if they have no active one."""
        with self._connect() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE annotator = ? AND revoked_at IS NULL",
                (time.time(), str(annotator)),
            )
        return cur.rowcount > 0

    def list(self) -> list[TokenInfo]:
        """Every annotator with a token, active or revoked, by id."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT annotator, created_at, revoked_at FROM tokens ORDER BY annotator"
            ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def verify(self, token: str | None) -> str | None:
        """The annotator whose active token ``token`` is, or None.

        Every stored hash is compared in constant time (``hmac.compare_digest``), so the
        time a check takes says nothing about how close a guess was.
        """
        if not token or len(token) > 256:
            return None
        presented = token_hash(token)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT annotator, hash FROM tokens WHERE revoked_at IS NULL"
            ).fetchall()
        found = None
        for annotator, stored in rows:
            if hmac.compare_digest(presented, stored):
                found = annotator
        return found
