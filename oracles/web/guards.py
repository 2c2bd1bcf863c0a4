"""What the annotation page keeps on the server to guard sign-in: sessions, a failure budget per
client, and a request-body limit enforced while the body is read.

- :class:`Sessions`: the cookie holds a random session id, never the token. The id maps (in
  this process's memory) to the annotator and their token, which is re-checked against the
  token file on every request: signing out drops the id, and revoking or replacing the token
  ends every session made with it.
- :class:`FailureBudget`: a client (address) that presents more than ``limit`` bad tokens in
  ``window`` seconds is answered 429 with ``Retry-After`` until the oldest failure ages out,
  without its tokens being checked.
- :class:`BodyLimit`: an ASGI middleware that refuses (413) a body longer than its limit as
  soon as the ``Content-Length`` says so or the bytes read pass it, before any route (and so
  before authentication) sees the request.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException


@dataclass(frozen=True)
class Session:
    annotator: str
    token: str


class Sessions:
    """Server-side sessions: random id → (annotator, token)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, annotator: str, token: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._by_id[sid] = Session(annotator, token)
        return sid

    def get(self, sid: str) -> Session | None:
        with self._lock:
            return self._by_id.get(sid)

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


class FailureBudget:
    """At most ``limit`` bad tokens per client in any ``window`` seconds.

    Examples
    --------
    >>> budget = FailureBudget(limit=2, window=60.0)
    >>> budget.fail("1.2.3.4", now=0.0); budget.fail("1.2.3.4", now=1.0)
    >>> budget.retry_after("1.2.3.4", now=2.0), budget.retry_after("5.6.7.8", now=2.0)
    (58, None)
    >>> budget.retry_after("1.2.3.4", now=60.5)
    """

    def __init__(self, limit: int = 20, window: float = 60.0) -> None:
        self.limit, self.window = int(limit), float(window)
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str, now: float | None = None) -> int | None:
        """Seconds until ``client`` may try a token again; None if it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window - now))

    def fail(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(client, now).append(now)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, checked while it is read."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # the app's exception handler answers it with 413
                    raise HTTPException(413, f"the request body is larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"the request body is larger than {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
