"""Talking to an MLflow tracking server over HTTP: one quick attempt per call, and which
failures are worth retrying (the retries themselves are :class:`~alloop.tracking.ResilientTracker`'s)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: MLflow client settings alloop uses for its own calls to a tracking server, unless you set
#: them: no retries inside MLflow (its default, 7 doubling retries, blocks a call to a stopped
#: server for ~4 minutes; alloop retries itself, see Backoff), a 60 s timeout instead of 120 s,
#: and no "View run at URL" line printed per round.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_unreachable(exc: BaseException) -> bool:
    """True for errors that retrying later may fix: no connection, a timeout, HTTP 5xx or 429.

    MLflow wraps connection errors in an ``MlflowException`` (the original is its context), and
    reports a server's 5xx answer as one with a 5xx error code.

    Examples
    --------
    >>> is_unreachable(ConnectionRefusedError(111, "Connection refused"))
    True
    >>> is_unreachable(ValueError("metric value must be a number"))
    False
    """
    import requests
    from mlflow.exceptions import MlflowException

    def retryable(status: int | None) -> bool:
        return status is not None and (status == 429 or status >= 500)

    for err in _chain(exc):
        if isinstance(err, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout
                      | requests.exceptions.ChunkedEncodingError):
            return True
        if isinstance(err, requests.HTTPError) and err.response is not None:
            return retryable(err.response.status_code)
    return isinstance(exc, MlflowException) and retryable(exc.get_http_status_code())


@contextmanager
def mlflow_http_defaults(tracking_uri: str) -> Iterator[None]:
    """Apply :data:`HTTP_DEFAULTS` (those not set by the user) for a block of HTTP calls.

    Scoped rather than global so the rest of the process keeps MLflow's defaults.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        yield
        return
    added = [name for name in HTTP_DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = HTTP_DEFAULTS[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
