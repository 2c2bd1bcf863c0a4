"""`alloop ui` and `alloop server` stop the MLflow server and all its workers on SIGTERM.

Real processes: the `alloop` CLI in a subprocess, the `mlflow` server it starts, a SQLite store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alloop.services.postgres import free_port


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen there (SO_REUSEADDR, as servers bind: TIME_WAIT is fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def serving_on(port: int) -> list[int]:
    """Pids of the processes started for this port (the server and its workers)."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines()
            if f"--port {port}" in line and "mlflow" in line]


def start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "alloop", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def port():
    port = free_port()
    yield port
    for pid in serving_on(port):  # what a failed test left behind
        os.kill(pid, signal.SIGKILL)


def test_ui_stops_the_server_and_its_workers_on_sigterm(tmp_path, port):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = start(["ui", "--tracking-uri", uri, "--port", str(port)], tmp_path)
    deadline = time.monotonic() + 300
    while not healthy(port):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the UI never answered"
        time.sleep(0.5)
    assert serving_on(port)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert serving_on(port) == []
    assert port_is_free("127.0.0.1", port)


def test_server_interrupted_while_starting_leaves_nothing_running(tmp_path, port):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = start(["server", "--backend-store-uri", uri, "--port", str(port),
                  "--artifacts-destination", str(tmp_path / "artifacts")], tmp_path)
    assert "starting mlflow server" in proc.stderr.readline()
    deadline = time.monotonic() + 60
    while not serving_on(port):  # the server process exists, but is not ready yet
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    assert not healthy(port)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert serving_on(port) == []
    assert port_is_free("127.0.0.1", port)
