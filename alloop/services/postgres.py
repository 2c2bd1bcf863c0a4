"""A throwaway PostgreSQL server in a folder: for tests, benchmarks and a one-machine team setup.

It runs Debian's (or any) PostgreSQL binaries — ``initdb``, ``pg_ctl`` — as the current user,
listening on 127.0.0.1 only, with trust authentication for local connections. Not a production
database: point ``store.url`` / ``--backend-store-uri`` at your own server for that.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Where Debian puts the server binaries (they are not on PATH there).
_SEARCH = ("/usr/lib/postgresql/{v}/bin",)


def find_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``.

    ``ALLOOP_PG_BIN`` wins; then ``PATH``; then Debian's ``/usr/lib/postgresql/<version>/bin``
    (newest version first).

    Raises
    ------
    FileNotFoundError
        Naming the install command when no PostgreSQL server binaries exist.
    """
    given = os.environ.get("ALLOOP_PG_BIN")
    if given:
        if not (Path(given) / "initdb").exists():
            raise FileNotFoundError(f"ALLOOP_PG_BIN={given!r} holds no initdb")
        return Path(given)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*") if p.name.isdigit() and (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name),
        reverse=True,
    ) if root.exists() else []
    if versions:
        return versions[0] / "bin"
    raise FileNotFoundError(
        "no PostgreSQL server found (initdb, pg_ctl): install it, e.g. `apt-get install "
        "postgresql`, or set ALLOOP_PG_BIN to the folder holding initdb"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; run them as the 'postgres' account then.
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-c", " ".join(cmd)]


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster; stop it with :meth:`stop` or a ``with`` block.

    Examples
    --------
    >>> with start_postgres() as pg:  # doctest: +SKIP
    ...     store = open_store(pg.url("labels"))
    """

    data_dir: Path
    port: int
    user: str
    bin_dir: Path
    host: str = "127.0.0.1"
    #: whether :meth:`stop` deletes ``data_dir`` (a temporary folder made by start_postgres)
    remove_on_stop: bool = False

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A URL, e.g. ``postgresql://postgres@127.0.0.1:5433/labels``.

        ``driver`` may name a SQLAlchemy dialect+driver such as ``postgresql+psycopg``; the plain
        form suits psycopg, ``open_store`` (which picks psycopg 3 for it) and MLflow.
        """
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if absent) and return its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and end open sessions; delete a temporary cluster.

        A cluster that is kept gets a clean ("fast") shutdown; a temporary one is about to be
        deleted, so it skips the shutdown checkpoint ("immediate").
        """
        mode = "immediate" if self.remove_on_stop else "fast"
        subprocess.run(
            _as_postgres_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                               "-w", "stop"]),
            check=False, capture_output=True,
        )
        if self.remove_on_stop:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgres(data_dir: str | Path | None = None, port: int | None = None) -> PostgresServer:
    """Create (once) and start a PostgreSQL cluster in ``data_dir`` on 127.0.0.1.

    Parameters
    ----------
    data_dir : path, optional
        The cluster's folder; a new temporary folder when omitted. An existing cluster there is
        started again, so its data survives restarts.
    port : int, optional
        Default: a free port.

    Returns
    -------
    PostgresServer
        Its :meth:`~PostgresServer.url` gives the connection URL.
    """
    bin_dir = find_binaries()
    temporary = data_dir is None
    data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="alloop-pg-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
        data_dir.chmod(0o700)
    try:
        if not (data_dir / "PG_VERSION").exists():
            made = subprocess.run(
                _as_postgres_user([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user,
                                   "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                capture_output=True, text=True,
            )
            if made.returncode != 0:
                hint = (" (as root the server runs as the 'postgres' account, which must be able "
                        "to reach this folder: pick one whose parents are not mode 700)"
                        if os.geteuid() == 0 else "")
                raise RuntimeError(
                    f"initdb could not create a cluster in {data_dir}{hint}:\n"
                    f"{(made.stderr or made.stdout).strip()}"
                )
        # A free port can be taken between choosing and binding it (another test worker starting
        # its own server): choose again, unless the caller named the port.
        for _attempt in range(1 if port else 5):
            chosen = port or free_port()
            result = _pg_ctl_start(bin_dir, data_dir, chosen)
            if result.returncode == 0:
                return PostgresServer(data_dir=data_dir, port=chosen, user=user, bin_dir=bin_dir,
                                      remove_on_stop=temporary)
        log = (data_dir / "server.log").read_text()[-2000:] if (data_dir / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start in {data_dir}:\n{result.stderr}\n{log}")
    except BaseException:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _pg_ctl_start(bin_dir: Path, data_dir: Path, port: int) -> subprocess.CompletedProcess:
    # the socket directory is the data folder: /var/run/postgresql may not exist or be writable
    options = f"-h 127.0.0.1 -p {port} -k {data_dir} -c fsync=on -c max_connections=200"
    return subprocess.run(
        _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l",
                           str(data_dir / "server.log"), "-o", options, "-w", "-t", "60", "start"]),
        capture_output=True, text=True,
    )
