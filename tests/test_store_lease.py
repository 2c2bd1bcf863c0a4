"""One writer per label store: the lease in one process (both backends), and real ``alloop run``
processes racing for one store, killed with SIGKILL and resumed."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from alloop.records import Answer
from alloop.store import StoreLeaseError, open_store, remove_store
from alloop.store import lease as lease_module

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- in one process


def test_a_second_writer_is_refused_naming_the_holder(label_store_url):
    first, second = open_store(label_store_url), open_store(label_store_url)
    first.take_lease()
    first.set_meta("run_id", "run-abc")
    with pytest.raises(StoreLeaseError) as info:
        second.take_lease()
    message = str(info.value)
    assert f"PID {os.getpid()}" in message and "run-abc" in message
    assert "--resume" in message and "needs no lease" in message
    first.append(Answer("a", 1), round=0)  # the holder writes on
    assert second.current_labels() == {"a": 1}  # a reader needs no lease
    first.release_lease()
    second.take_lease()  # given back: the next writer takes it
    assert second.holds_lease
    second.close()
    first.close()


def test_the_lease_is_given_back_on_close_and_is_reentrant(label_store_url):
    store = open_store(label_store_url)
    store.take_lease()
    store.take_lease()
    store.release_lease()
    assert store.holds_lease
    store.close()
    other = open_store(label_store_url)
    other.take_lease()
    other.close()


def test_a_sqlite_store_is_not_removed_under_its_writer(tmp_path):
    path = tmp_path / "s.sqlite"
    store = open_store(path)
    store.take_lease()
    with pytest.raises(StoreLeaseError, match="not removed"):
        remove_store(path)
    store.close()
    remove_store(path)
    assert not path.exists() and not Path(f"{path}.lock").exists()


def test_a_refusal_never_names_a_dead_holder_while_the_new_one_records_itself(tmp_path, monkeypatch):
    from filelock import FileLock

    path = tmp_path / "s.sqlite"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID of this host that no longer exists
    write_record(str(path), host=__import__("socket").gethostname(), pid=dead.pid, heartbeat=time.time())
    lock = FileLock(f"{path}.lock", timeout=0, thread_local=False)
    lock.acquire()  # the new holder has the OS lock and has not written its record yet
    monkeypatch.setattr(lease_module, "SETTLE", 0.2)
    store = open_store(path)
    try:
        with pytest.raises(StoreLeaseError) as info:
            store.take_lease()
        assert f"PID {dead.pid}" not in str(info.value)
        assert "has not recorded itself yet" in str(info.value)
        # once the holder's record is there, the refusal names it
        write_record(str(path), host="elsewhere", pid=4242, heartbeat=time.time())
        with pytest.raises(StoreLeaseError, match="PID 4242 on elsewhere"):
            store.take_lease()
    finally:
        store.close()
        lock.release()


def write_record(url: str, **record) -> None:
    store = open_store(url)
    store.set_meta("writer", {"holder": "x", "since": time.time(), "run_id": None, **record})
    store.close()


def test_postgresql_takes_over_a_lease_whose_heartbeat_expired(postgres_server):
    import socket
    import uuid

    url = postgres_server.create_database(f"lease_{uuid.uuid4().hex[:10]}")
    # a holder on another machine, alive 5 s ago: refused
    write_record(url, host="elsewhere", pid=1, heartbeat=time.time() - 5)
    with open_store(url) as store, pytest.raises(StoreLeaseError, match="PID 1 on elsewhere"):
        store.take_lease()
    # ... silent for longer than EXPIRES: dead, taken over
    write_record(url, host="elsewhere", pid=1, heartbeat=time.time() - lease_module.EXPIRES - 1)
    with open_store(url) as store:
        store.take_lease()
        assert store.get_meta("writer")["pid"] == os.getpid()
    # a fresh heartbeat, but from a PID that no longer exists on this host: dead at once
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_record(url, host=socket.gethostname(), pid=gone.pid, heartbeat=time.time())
    with open_store(url) as store:
        store.take_lease()


def test_a_postgresql_holder_that_lost_its_lease_cannot_write(postgres_server, monkeypatch):
    import uuid

    url = postgres_server.create_database(f"fence_{uuid.uuid4().hex[:10]}")
    stalled = open_store(url)
    stalled.take_lease()
    stalled.append(Answer("a", 1), round=0)
    # it stalls past expiry (here: its record is made old) and another process takes over
    record = stalled.get_meta("writer")
    with open_store(url) as meta:
        meta.set_meta("writer", {**record, "heartbeat": time.time() - lease_module.EXPIRES - 5,
                                 "host": "elsewhere"})
    successor = open_store(url)
    successor.take_lease()
    with pytest.raises(StoreLeaseError, match="lost its writer lease"):
        stalled.append(Answer("b", 0), round=0)
    successor.append(Answer("c", 0), round=0)
    assert [a.item_id for a in successor.answers()] == ["a", "c"]
    stalled.close()
    successor.close()


def test_postgresql_heartbeat_renews_the_record(postgres_server, monkeypatch):
    import uuid

    monkeypatch.setattr(lease_module, "HEARTBEAT", 0.05)
    url = postgres_server.create_database(f"beat_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    store.take_lease()
    first = store.get_meta("writer")["heartbeat"]
    deadline = time.monotonic() + 30
    while store.get_meta("writer")["heartbeat"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get_meta("writer")["heartbeat"] > first
    store.close()


# --------------------------------------------------------------------------- two processes


def files_config(tmp_path: Path) -> Path:
    config = {
        "name": "lease",
        "seed": 1,
        "data": {"source": "sklearn:digits", "max_items": 300},
        "model": {"kind": "logistic", "C": 1.0},
        "strategy": {"name": "entropy"},
        "loop": {"initial": 6, "batch_size": 4, "rounds": 2},
        "oracle": {"kind": "files", "dir": str(tmp_path / "exchange"), "format": "csv",
                   "poll_interval": 0.1},
        "store": {"path": str(tmp_path / "labels.sqlite")},
    }
    path = tmp_path / "lease.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(cfg: Path, uri: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "alloop", "run", str(cfg), "--tracking-uri", uri, "--no-progress", *extra],
        cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def race(cfg: Path, uri: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start two runs together; return the one still running and the other's stderr."""
    a, b = start(cfg, uri, *extra), start(cfg, uri, *extra)
    deadline = time.monotonic() + 300
    while a.poll() is None and b.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    loser = a if a.poll() is not None else b
    winner = b if loser is a else a
    _, err = loser.communicate(timeout=60)
    assert loser.returncode not in (0, None), err
    assert winner.poll() is None, "both runs ended: the winner should be waiting for answers"
    return winner, " ".join(err.split()) + f" [winner pid {winner.pid}]"


def answer(cfg: Path, round_: int, timeout: float = 300) -> None:
    """Fill a round's answers file once its request file is out (label: any digit)."""
    exchange = cfg.parent / "exchange"
    requests = exchange / f"round-{round_}-requests.csv"
    deadline = time.monotonic() + timeout
    while not requests.exists():
        assert time.monotonic() < deadline, f"no {requests.name}"
        time.sleep(0.1)
    with open(requests, newline="") as f:
        ids = [row["item_id"] for row in csv.DictReader(f)]
    lines = ["item_id,label"] + [f"{i},{int(i.split('-')[-1]) % 10 if i.split('-')[-1].isdigit() else 1}"
                                  for i in ids]
    (exchange / f"round-{round_}-answers.csv").write_text("\n".join(lines) + "\n")


def parents(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("lease")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def nested_rounds(uri: str) -> list[int]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("lease")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return sorted(int(r.data.tags["alloop.round"]) for r in runs if "mlflow.parentRunId" in r.data.tags)


def test_two_runs_then_kill_9_then_two_resumes_leave_one_run(tmp_path):
    cfg = files_config(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    # two fresh runs started together: one runs, the other is refused naming it
    winner, refused = race(cfg, uri)
    assert f"is being written by PID {winner.pid}" in refused, refused
    assert "--resume" in refused and "Traceback" not in refused
    answer(cfg, 0)
    deadline = time.monotonic() + 300
    with open_store(cfg.parent / "labels.sqlite") as store:
        while not store.completed_rounds() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 0 in store.completed_rounds()
        while not (cfg.parent / "exchange" / "round-1-requests.csv").exists():
            time.sleep(0.1)
    assert len(parents(uri)) == 1

    # the holder dies without a word, mid-round 1
    winner.send_signal(signal.SIGKILL)
    winner.wait()

    # two --resume started together: one takes the dead holder's lease, the other is refused
    winner, refused = race(cfg, uri, "--resume")
    assert f"is being written by PID {winner.pid}" in refused, refused
    answer(cfg, 1)
    answer(cfg, 2)
    out, err = winner.communicate(timeout=300)
    assert winner.returncode == 0, err

    with open_store(cfg.parent / "labels.sqlite") as store:
        answers = store.answers()
        assert len(answers) == 6 + 4 + 4  # each requested item answered once
        assert len({a.item_id for a in answers}) == len(answers)
        assert sorted(store.completed_rounds()) == [0, 1, 2]
        assert store.verify() is None
        assert store.get_meta("writer")["released"]
    runs = parents(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].info.run_id in out
    assert nested_rounds(uri) == [0, 1, 2]  # one nested run per round, none doubled
