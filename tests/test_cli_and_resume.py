"""The CLI end to end on a real MLflow SQLite store, and resume after SIGKILL mid-round."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from alloop.store import LabelStore

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, name: str, **loop) -> Path:
    config = {
        "name": name,
        "seed": 1,
        "data": {"source": "sklearn:digits", "max_items": 600},
        "model": {"kind": "logistic", "C": 1.0},
        "strategy": {"name": "entropy"},
        "loop": {"initial": 20, "batch_size": 10, "rounds": 5, **loop},
        "store": {"path": str(tmp_path / f"{name}.sqlite")},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def alloop(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "alloop", *args, "--no-progress"] if args[0] == "run"
        else [sys.executable, "-m", "alloop", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"alloop {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def runs_of(uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_run_leaves_one_parent_and_one_nested_run_per_round(tmp_path):
    cfg = write_config(tmp_path, "cli")
    proc = alloop("run", str(cfg), cwd=tmp_path)
    assert "accuracy" in proc.stdout
    # default tracking URI: mlflow.db in the working directory
    assert (tmp_path / "mlflow.db").exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = runs_of(uri, "cli")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert sorted(int(r.data.tags["alloop.round"]) for r in children) == list(range(6))
    client = mlflow.MlflowClient(uri)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert {"labels", "accuracy", "fit_seconds"} <= set(child.data.metrics)
        assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["queries.csv"]
    queries = pd.read_csv(client.download_artifacts(children[0].info.run_id, "queries.csv", str(tmp_path)))
    assert {"item_id", "score", "label", "annotator"} <= set(queries.columns)
    parent = parents[0]
    assert parent.data.params["strategy.name"] == "entropy"
    history = client.get_metric_history(parent.info.run_id, "curve.accuracy")
    assert sorted(m.step for m in history) == [20, 30, 40, 50, 60, 70]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"learning_curve.png", "learning_curve.csv", "model"} <= artifacts


def test_strategies_command_lists_registry():
    proc = alloop("strategies", cwd=ROOT)
    assert "random" in proc.stdout and "entropy" in proc.stdout


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\ndata: [unclosed", "is not valid YAML"),
        ("name: x\ndata: {source: 'sklearn:digits'}\nstrategy: {name: nope}", "unknown strategy 'nope'; valid names:"),
        ("name: x\ndata: {source: 'sklearn:digits'}\nloop: {batch_size: -3}", "loop.batch_size: Input should be greater than 0 (got -3)"),
        ("name: x\ndata: {source: 'sklearn:digits'}\nmodel: {kind: forest}", "model.kind: Input should be 'logistic', 'linear', 'mlp', 'sklearn' or 'hierarchical'"),
        ("name: x\ndata: {source: 'sklearn:digits'}\nloop: {batchsize: 3}", "loop.batchsize: unknown field"),
        ("name: x", "data: Field required"),
    ],
)
def test_malformed_config_gets_a_clear_error(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = alloop("run", str(path), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert expected in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from alloop.config import load_config
    from alloop.experiment import build_loop

    cfg = load_config(sys.argv[1])
    loop = build_loop(cfg, tracking_uri=sys.argv[2], progress=False)
    kill_round, kill_after = int(sys.argv[3]), int(sys.argv[4])
    append = loop.store.append
    count = 0

    def append_then_die(answer, round):
        global count
        seq = append(answer, round)
        if round == kill_round:
            count += 1
            if count == kill_after:  # some of this round's answers are committed, the rest not
                os.kill(os.getpid(), signal.SIGKILL)
        return seq

    loop.store.append = append_then_die
    loop.run()
    """
)


def test_sigkill_mid_round_then_resume_gives_the_uninterrupted_curve(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reference_cfg = write_config(tmp_path, "reference")
    alloop("run", str(reference_cfg), "--tracking-uri", uri, cwd=tmp_path)

    cfg = write_config(tmp_path, "killed")
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.run([sys.executable, str(child), str(cfg), uri, "3", "4"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = LabelStore(tmp_path / "killed.sqlite")
    assert sorted(store.completed_rounds()) == [0, 1, 2]
    assert len(store.answers(round=3)) == 4  # answered before the kill, kept
    store.close()

    alloop("run", str(cfg), "--tracking-uri", uri, "--resume", cwd=tmp_path)

    def curve(name):
        s = LabelStore(tmp_path / f"{name}.sqlite")
        rows = {r: (d["n_labeled"], d["metrics"]["accuracy"], d["metrics"]["log_loss"])
                for r, d in s.completed_rounds().items()}
        labels = s.current_labels()
        s.close()
        return rows, labels

    assert curve("killed") == curve("reference")
    killed = LabelStore(tmp_path / "killed.sqlite")
    assert len(killed.answers(round=3)) == 10  # the 4 kept answers were not asked again
    runs = runs_of(uri, "killed")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    rounds = sorted(int(r.data.tags["alloop.round"]) for r in runs if "alloop.round" in r.data.tags)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert rounds == list(range(6))


def test_resume_relogs_a_round_the_tracker_missed(tmp_path):
    """Killed after the store finished a round but before MLflow logged it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = write_config(tmp_path, "gap", rounds=3)
    script = tmp_path / "gap.py"
    script.write_text(textwrap.dedent(
        """
        import os, signal, sys
        from alloop.config import load_config
        from alloop.experiment import build_loop
        loop = build_loop(load_config(sys.argv[1]), tracking_uri=sys.argv[2], progress=False)
        log_round = loop.tracker.log_round
        def log_or_die(report):
            if report.round == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            log_round(report)
        loop.tracker.log_round = log_or_die
        loop.run()
        """
    ))
    proc = subprocess.run([sys.executable, str(script), str(cfg), uri], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    alloop("run", str(cfg), "--tracking-uri", uri, "--resume", cwd=tmp_path)
    rounds = sorted(int(r.data.tags["alloop.round"]) for r in runs_of(uri, "gap") if "alloop.round" in r.data.tags)
    assert rounds == [0, 1, 2, 3]


def test_fresh_run_on_existing_store_is_refused_with_the_fix(tmp_path):
    cfg = write_config(tmp_path, "twice", rounds=1)
    alloop("run", str(cfg), cwd=tmp_path)
    proc = alloop("run", str(cfg), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert os.path.getsize(tmp_path / "twice.sqlite") > 0
