"""An ``mlflow server`` subprocess: a tracking server that several loops (or people) share.

Runs and metrics go to a SQL backend store (PostgreSQL for a team; SQLite works for one
machine); artifacts (queries, curves, models) are uploaded *through* the server
(``--serve-artifacts``) into a folder or bucket, so clients need no access to that storage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from alloop.services.postgres import free_port


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL with the driver that is installed: psycopg 3 (``postgresql+psycopg``).

    SQLAlchemy reads a bare ``postgresql://`` as psycopg2, which alloop does not depend on.

    Examples
    --------
    >>> sqlalchemy_url("postgresql://me@127.0.0.1:5432/mlflow")
    'postgresql+psycopg://me@127.0.0.1:5432/mlflow'
    >>> sqlalchemy_url("sqlite:///mlflow.db")
    'sqlite:///mlflow.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


@dataclass
class MlflowServer:
    """A running ``mlflow server``; stop it with :meth:`stop` or a ``with`` block."""

    process: subprocess.Popen
    host: str
    port: int
    backend_store_uri: str
    artifacts_destination: str
    log_path: Path
    startup_seconds: float = field(default=float("nan"))

    @property
    def url(self) -> str:
        """The tracking URI clients use: ``alloop run CONFIG --tracking-uri URL``."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and its workers (SIGTERM to the process group, then SIGKILL)."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_mlflow_server(
    backend_store_uri: str,
    artifacts_dir: str | Path,
    host: str = "127.0.0.1",
    port: int | None = 5000,
    *,
    workers: int = 1,
    log_path: str | Path | None = None,
    timeout: float = 180.0,
) -> MlflowServer:
    """Start ``mlflow server`` and wait until its ``/health`` answers.

    Parameters
    ----------
    backend_store_uri : str
        Where runs and metrics live, e.g. ``postgresql://user@host:5432/mlflow`` (rewritten to
        the psycopg 3 driver, see :func:`sqlalchemy_url`) or ``sqlite:///mlflow.db``.
    artifacts_dir : path or URI
        Where uploaded artifacts go (``--artifacts-destination``): a folder or e.g. ``s3://...``.
    host, port :
        Where to listen; ``port=None`` takes a free one.
    workers : int
        Server worker processes (1 suffices for a few loops; each costs memory and start time).
    log_path : path, optional
        The server's stdout/stderr (default: ``mlflow-server.log`` beside a local artifacts
        folder, else in the temp folder). Read it when the server does not come up.
    timeout : float
        Seconds to wait for ``/health``: the server imports MLflow twice and, on an empty
        database, creates its tables (about 20 s on a busy two-core machine).

    Returns
    -------
    MlflowServer
        ``.url`` is the tracking URI; ``.stop()`` ends it.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer in time; the message holds the log's tail.

    Examples
    --------
    >>> with start_mlflow_server("sqlite:///mlflow.db", "mlartifacts") as server:  # doctest: +SKIP
    ...     run_experiment(config, tracking_uri=server.url)
    """
    port = port or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    destination = str(artifacts_dir)
    if "://" not in destination:
        Path(destination).mkdir(parents=True, exist_ok=True)
        destination = str(Path(destination).resolve())
        default_log = Path(destination).parent / "mlflow-server.log"
    else:
        default_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"alloop-mlflow-{port}.log"
    log_path = Path(log_path) if log_path is not None else default_log
    backend = sqlalchemy_url(backend_store_uri)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", destination,
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        # its own process group: stop() ends the server's workers with it
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = MlflowServer(process, host, port, backend, destination, log_path)
    deadline = t0 + timeout
    while not _healthy(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            reason = f"exited with code {process.returncode}" if process.poll() is not None else (
                f"did not answer {server.url}/health within {timeout:g} s")
            raise RuntimeError(f"mlflow server {reason}; its log ({log_path}) ends:\n{tail}")
        time.sleep(0.25)
    server.startup_seconds = time.monotonic() - t0
    return server
