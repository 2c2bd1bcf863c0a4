"""A throwaway Label Studio server on 127.0.0.1: for tests, and for trying the oracle out.

Label Studio is a separate program whose pins clash with alloop's, so it lives in its own
virtual environment; :func:`find_label_studio` looks for its ``label-studio`` executable and
:func:`start_label_studio` runs it in a folder of its own, with an admin account and API token
chosen here, nothing sent out (no analytics, version checks or error reports), and stops it
(its whole process group) on :meth:`LabelStudioServer.stop` or at the end of a ``with`` block.
Not a production setup: see Label Studio's own documentation for that.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: where ``scripts/system_deps.sh`` installs Label Studio, relative to the repository root.
VENV = ".venv-label-studio"

#: settings that keep a local server from reaching out to the internet.
OFFLINE_ENV = {
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "CONVERTER_DOWNLOAD_RESOURCES": "false",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_label_studio(extra: Iterable[str | Path] = ()) -> Path | None:
    """The ``label-studio`` executable, or None.

    Looks at ``ALLOOP_LABEL_STUDIO`` (the executable's path), then ``.venv-label-studio`` in the
    repository, then each of ``extra``.

    Raises
    ------
    FileNotFoundError
        When ``ALLOOP_LABEL_STUDIO`` names a file that does not exist.
    """
    given = os.environ.get("ALLOOP_LABEL_STUDIO")
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(
                f"ALLOOP_LABEL_STUDIO={given!r} is not a file; point it at the label-studio "
                "executable of its virtual environment (…/bin/label-studio)"
            )
        return Path(given)
    repo = Path(__file__).resolve().parents[2]
    for candidate in [repo / VENV / "bin" / "label-studio", *map(Path, extra)]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class LabelStudioServer:
    """A running local Label Studio; ``url``, the admin's ``email`` and API ``token``."""

    process: subprocess.Popen
    url: str
    email: str
    password: str
    token: str = field(repr=False)
    data_dir: Path
    startup_seconds: float
    _cleanup: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __enter__(self) -> LabelStudioServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace: float = 20.0) -> None:
        """Stop the server and everything it started (SIGTERM, then SIGKILL after ``grace``)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(grace)
        if self._cleanup is not None:
            self._cleanup.cleanup()
            self._cleanup = None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log (start-up problems show here)."""
        path = self.data_dir / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def add_user(self, email: str, password: str) -> str:
        """Sign a new person up (as the sign-up page does) and return their API token.

        They join the server's organization and can annotate every project of it.
        """
        import httpx

        with httpx.Client(base_url=self.url, follow_redirects=True, timeout=60.0) as web:
            page = web.get("/user/signup/")
            csrf = web.cookies.get("csrftoken")
            if csrf is None:
                found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                csrf = found.group(1) if found else ""
            web.post("/user/signup/", data={"email": email, "password": password,
                                            "csrfmiddlewaretoken": csrf},
                     headers={"Referer": f"{self.url}/user/signup/"})
            answer = web.get("/api/current-user/token")
            if answer.status_code != 200:
                raise RuntimeError(
                    f"signing up {email!r} failed (HTTP {answer.status_code} for the token): "
                    "the password may be too short or the e-mail taken"
                )
            return str(answer.json()["token"])


def _environment(executable: str | Path, data: Path) -> dict[str, str]:
    # A clean environment: nothing of ours (tokens, USERNAME, PORT, HOST...) reaches it.
    return {
        "PATH": f"{Path(executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data),
        "LANG": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LOG_LEVEL": "WARNING",
        **OFFLINE_ENV,
    }


def _account(email: str, password: str, token: str) -> list[str]:
    # "--opt=value": a generated password may begin with "-" (token_urlsafe's alphabet has it),
    # which Label Studio's argparse would take for an option and exit 2
    return [f"--username={email}", f"--password={password}", f"--user-token={token}",
            "--enable-legacy-api-token"]


def prepare_template(executable: str | Path, template: str | Path, email: str = "admin@example.com",
                     timeout: float = 900.0) -> tuple[str, str]:
    """Create (once) a data folder with the database migrated and an admin account in it.

    Copies of it start in seconds instead of the minute or two the migrations take. Returns
    the admin's (password, token), kept in the folder. Safe to call from several processes.
    """
    import fcntl
    import json
    import shutil

    template = Path(template)
    template.parent.mkdir(parents=True, exist_ok=True)
    with open(template.parent / f".{template.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        account = template / "alloop-account.json"
        if not account.exists():
            building = template.with_name(f".{template.name}.building")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            password, token = secrets.token_urlsafe(12), secrets.token_hex(20)
            with open(building / "server.log", "ab") as log:
                subprocess.run(
                    [str(executable), "init", "--quiet", "--data-dir", str(building),
                     *_account(email, password, token)],
                    env=_environment(executable, building), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, timeout=timeout, check=True,
                )
            (building / "alloop-account.json").write_text(
                json.dumps({"email": email, "password": password, "token": token}))
            shutil.rmtree(template, ignore_errors=True)
            building.rename(template)
        saved = json.loads(account.read_text())
    if saved["email"] != email:
        raise ValueError(f"template {template} holds the account {saved['email']!r}, not {email!r}")
    return saved["password"], saved["token"]


def start_label_studio(
    executable: str | Path,
    data_dir: str | Path | None = None,
    *,
    port: int | None = None,
    email: str = "admin@example.com",
    password: str | None = None,
    token: str | None = None,
    timeout: float = 900.0,
    template: str | Path | None = None,
) -> LabelStudioServer:
    """Start Label Studio on 127.0.0.1 and wait until it answers API calls with ``token``.

    The first start in a new ``data_dir`` creates its database (a minute or two). The admin
    account ``email`` gets ``token`` as its legacy API token (legacy tokens are switched on for
    the organization created here).

    Parameters
    ----------
    executable : path
        The ``label-studio`` script of its virtual environment.
    data_dir : path, optional
        Database and media (default: a temporary folder, removed on stop).
    port : int, optional
        Default: a free port.
    email, password, token : str
        The admin account; password and token default to random ones.
    timeout : float
        Seconds to wait for the server.
    template : path, optional
        Start from a copy of this prepared data folder (see :func:`prepare_template`; made
        here on first use): seconds instead of minutes. Its account replaces password and token.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer in time (with the end of its log).
    """
    import httpx

    cleanup = None
    if data_dir is None:
        cleanup = tempfile.TemporaryDirectory(prefix="label-studio-")
        data_dir = cleanup.name
    data = Path(data_dir)
    began = time.monotonic()
    if template is not None:
        import shutil

        password, token = prepare_template(executable, template, email, timeout)
        shutil.copytree(template, data, dirs_exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    password = password or secrets.token_urlsafe(12)
    token = token or secrets.token_hex(20)
    command = [
        str(executable), "start", "--no-browser", "--internal-host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(data), "--log-level", "WARNING",
        *_account(email, password, token),
    ]
    with open(data / "server.log", "ab") as log:
        process = subprocess.Popen(command, env=_environment(executable, data), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = LabelStudioServer(process, url, email, password, token, data, 0.0, cleanup)
    headers = {"Authorization": f"Token {token}"}
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with code {process.returncode} while starting:\n"
                    + server.log_tail()
                )
            if time.monotonic() - began > timeout:
                raise RuntimeError(
                    f"Label Studio did not answer at {url} within {timeout:g} s:\n"
                    + server.log_tail()
                )
            try:
                if httpx.get(f"{url}/api/current-user/whoami", headers=headers,
                             timeout=5.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - began
    return server
