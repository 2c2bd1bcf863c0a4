"""An `mlflow server` on PostgreSQL, started by the `alloop server` helper, receives whole loops,
including one during which the server is stopped and started again.

Real components only: a PostgreSQL cluster and an `mlflow server` subprocess (through
``server_command``, run the way ``alloop server`` runs it), the `alloop run` CLI in a subprocess.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from alloop.services.postgres import find_binaries, free_port
from alloop.store import LabelStore
from alloop.tracking import TrackingUnavailableWarning
from oracles import OracleBase

ROOT = Path(__file__).resolve().parents[1]
SERVE = "import typer; from alloop.cli.serve import server_command; typer.run(server_command)"

try:
    find_binaries()
except FileNotFoundError as exc:  # pragma: no cover - CI installs PostgreSQL
    pytest.skip(f"PostgreSQL server binaries not installed: {exc}", allow_module_level=True)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class ServerCommand:
    """`alloop server --postgres-dir DIR --port PORT` as a subprocess that can be stopped and
    started again on the same port and database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts: list[float] = []  # seconds until /health answered, per start

    def start(self) -> None:
        t0 = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--postgres-dir", str(self.root / "pg"),
             "--artifacts-destination", str(self.root / "artifacts"), "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        while not healthy(self.url):
            if self.process.poll() is not None:
                raise AssertionError(f"alloop server exited:\n{self.process.stdout.read()}")
            if time.monotonic() - t0 > 240:
                self.stop()
                raise AssertionError("alloop server did not come up in 240 s")
            time.sleep(0.25)
        self.starts.append(time.monotonic() - t0)

    def stop(self) -> str:
        """Ctrl-C, as a person would; returns what the command printed."""
        if self.process is None or self.process.poll() is not None:
            return ""
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=60)
        return out

    def backend(self):
        """A connection to the server's PostgreSQL database (while it runs)."""
        import getpass
        import os

        import psycopg

        port = int((self.root / "pg" / "postmaster.pid").read_text().splitlines()[3])
        user = "postgres" if os.geteuid() == 0 else getpass.getuser()  # as start_postgres does
        return psycopg.connect(f"postgresql://{user}@127.0.0.1:{port}/mlflow")


@pytest.fixture(scope="module")
def server():
    # not under pytest's tmp folder: when tests run as root, PostgreSQL runs as 'postgres',
    # which cannot enter root's private /tmp/pytest-of-root
    root = Path(tempfile.mkdtemp(prefix="alloop-tracking-"))
    root.chmod(0o755)
    command = ServerCommand(root)
    try:
        command.start()
        yield command
    finally:
        output = command.stop()
        print(f"alloop server start-up seconds: {command.starts}\n{output}")
        shutil.rmtree(root, ignore_errors=True)
    assert not healthy(command.url), "Ctrl-C left the mlflow server running"


def write_config(tmp_path: Path, name: str) -> Path:
    config = {
        "name": name,
        "seed": 3,
        "data": {"source": "sklearn:breast_cancer", "max_items": 300},
        "model": {"kind": "logistic", "C": 1.0, "auto_regularity": False},
        "strategy": {"name": "entropy"},
        "loop": {"initial": 10, "batch_size": 5, "rounds": 5},
        "store": {"path": str(tmp_path / f"{name}.sqlite")},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_every_round_logged(url: str, experiment: str, store_path: Path) -> mlflow.entities.Run:
    """The parent run is FINISHED and each round the store completed is a FINISHED nested run
    whose metrics are the store's, with its queries uploaded; returns the parent run."""
    client = mlflow.MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {int(r.data.tags["alloop.round"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    store = LabelStore(store_path)
    done = store.completed_rounds()
    store.close()
    assert parent.info.status == "FINISHED"
    assert sorted(children) == sorted(done) == list(range(6))
    for r, child in children.items():
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        expected = {"labels": float(done[r]["n_labeled"]), **done[r]["metrics"]}
        assert child.data.metrics == pytest.approx(expected)
        assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["queries.csv"]
    history = client.get_metric_history(parent.info.run_id, "curve.accuracy")
    assert sorted(m.step for m in history) == [10, 15, 20, 25, 30, 35]
    return parent


def test_alloop_run_logs_to_the_server_on_postgresql(server, tmp_path):
    cfg = write_config(tmp_path, "served")
    proc = subprocess.run(
        [sys.executable, "-m", "alloop", "run", str(cfg), "--tracking-uri", server.url,
         "--threads", "1", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
    parent = assert_every_round_logged(server.url, "served", tmp_path / "served.sqlite")
    client = mlflow.MlflowClient(server.url)
    assert {"learning_curve.png", "learning_curve.csv", "model"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    queries = pd.read_csv(client.download_artifacts(
        parent.info.run_id, "learning_curve.csv", str(tmp_path)))
    assert queries["labels"].tolist() == [10, 15, 20, 25, 30, 35]
    # the runs are rows in PostgreSQL, the artifacts files under --artifacts-destination
    with server.backend() as conn:
        [(stored,)] = conn.execute(
            "SELECT count(*) FROM runs JOIN experiments USING (experiment_id) "
            "WHERE experiments.name = 'served'").fetchall()
    assert stored == 7
    assert len(list((server.root / "artifacts").rglob("queries.csv"))) == 6


class StopsTheServer(OracleBase):
    """Passes queries on; when round ``at`` is asked, stops the tracking server and starts it
    again ``after`` seconds later in the background while the loop goes on."""

    def __init__(self, oracle, server: ServerCommand, at: int, after: float) -> None:
        self.oracle, self.server, self.at, self.after = oracle, server, at, after
        self.restart: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def request(self, queries, on_answer=None):
        if self.restart is None and queries and queries[0].round == self.at:
            self.server.stop()
            assert not healthy(self.server.url)

            def restart() -> None:
                time.sleep(self.after)
                try:
                    self.server.start()
                except BaseException as exc:  # surfaced by the test
                    self.errors.append(exc)

            self.restart = threading.Thread(target=restart)
            self.restart.start()
        return self.oracle.request(queries, on_answer)


def test_a_loop_survives_the_server_going_down_and_logs_every_round(server, tmp_path, monkeypatch):
    from alloop.config import load_config
    from alloop.experiment import build_loop

    # a short per-round budget (rounds during the outage are buffered), and a long one at the
    # end: the restart takes ~20 s on a busy machine
    monkeypatch.setenv("ALLOOP_TRACKING_RETRY_SECONDS", "1")
    monkeypatch.setenv("ALLOOP_TRACKING_FINISH_SECONDS", "240")
    cfg = load_config(write_config(tmp_path, "outage"))
    loop = build_loop(cfg, tracking_uri=server.url, progress=False)
    oracle = StopsTheServer(loop.oracle, server, at=2, after=3.0)
    loop.oracle = oracle
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loop.run()
    loop.store.close()
    oracle.restart.join()
    assert not oracle.errors, oracle.errors
    assert len(server.starts) == 2
    assert result.curve["round"].tolist() == list(range(6))
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingUnavailableWarning)]
    assert len(messages) == 1 and server.url in messages[0]  # warned once, did not give up
    assert loop.tracker.pending == 0
    parent = assert_every_round_logged(server.url, "outage", tmp_path / "outage.sqlite")
    assert parent.info.run_id == result.run_id
