"""An ``mlflow server`` subprocess: a tracking server that several loops (or people) share.

Runs and metrics go to a SQL backend store (PostgreSQL for a team; SQLite works for one
machine); artifacts (queries, curves, models) are uploaded *through* the server
(``--serve-artifacts``) into a folder or bucket, so clients need no access to that storage.
``alloop ui`` starts the same way (``mlflow ui``) and both stay in the foreground through
:func:`serve_until_signal`, which stops the server's whole process group on Ctrl-C, SIGTERM or
SIGHUP.

Start-up time: MLflow's defaults cost most of it. Four uvicorn workers and MLflow's job runner
(seven huey consumers, for GenAI jobs alloop never submits) each import MLflow; on a two-core
machine that took 32 s (57 s on a new database) against 9-10 s for one worker without the job
runner. So alloop starts one worker and sets ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``
unless the environment says otherwise.
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

    process: subprocess.Popen | None
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
        """Stop the server and its workers (SIGTERM to the process group, then SIGKILL).

        The group is signalled even when the server itself has exited: a worker it left
        behind would keep the port.
        """
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:  # the whole group is gone already
            self.process.poll()
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # anything of the group still alive after the grace period
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mlflow_environment() -> dict[str, str]:
    """The environment for an MLflow server subprocess: no job runner unless asked for."""
    env = os.environ.copy()
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (nothing else is listening there)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as servers do: connections closed a moment ago (TIME_WAIT) do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


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
    return _launch(cmd, MlflowServer(None, host, port, backend, destination, log_path), timeout)


def start_mlflow_ui(
    backend_store_uri: str,
    host: str = "127.0.0.1",
    port: int | None = 5000,
    *,
    workers: int = 1,
    log_path: str | Path | None = None,
    timeout: float = 180.0,
) -> MlflowServer:
    """Start ``mlflow ui`` on a store and wait until it answers; parameters as
    :func:`start_mlflow_server` (artifacts are read where each experiment keeps them).

    Examples
    --------
    >>> with start_mlflow_ui("sqlite:///mlflow.db", port=None) as ui:  # doctest: +SKIP
    ...     print(ui.url)
    """
    port = port or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    if log_path is None:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"alloop-mlflow-ui-{port}.log"
    backend = sqlalchemy_url(backend_store_uri)
    cmd = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", backend,
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]
    return _launch(cmd, MlflowServer(None, host, port, backend, "", Path(log_path)), timeout)


def _launch(cmd: list[str], server: MlflowServer, timeout: float) -> MlflowServer:
    """Start ``cmd`` as ``server.process`` and wait for ``/health``; never leaves it running
    when it fails, times out or is interrupted (Ctrl-C, SIGTERM turned into KeyboardInterrupt)."""
    if not port_is_free(server.host, server.port):
        raise RuntimeError(
            f"port {server.port} on {server.host} is in use (another alloop ui or server?); "
            "stop that one or pass --port N"
        )
    log_path = server.log_path
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        # its own process group: stop() ends the server's workers with it
        server.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=mlflow_environment())
    process = server.process
    deadline = t0 + timeout
    try:
        while not _healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
                reason = f"exited with code {process.returncode}" if process.poll() is not None else (
                    f"did not answer {server.url}/health within {timeout:g} s")
                raise RuntimeError(f"mlflow {cmd[3]} {reason}; its log ({log_path}) ends:\n{tail}")
            time.sleep(0.25)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


def interrupt_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, in this process.

    Call it before starting a server in the foreground: an interrupted start-up or wait then
    unwinds through :meth:`MlflowServer.stop` instead of leaving the server running.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)


def serve_until_signal(server: MlflowServer) -> int | None:
    """Wait in the foreground until the server exits or is interrupted; then stop it.

    With :func:`interrupt_on_signals`, Ctrl-C, SIGTERM and SIGHUP all stop the server and every
    worker of its process group, so ``kill PID`` of the ``alloop`` process frees the port.
    Returns the server's exit code when it ended by itself, None when interrupted.
    """
    try:
        while server.process.poll() is None:
            time.sleep(0.5)
        return int(server.process.returncode or 0)
    except KeyboardInterrupt:
        return None
    finally:
        server.stop()
