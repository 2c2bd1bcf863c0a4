"""Resume with two annotators per item: a round killed mid-way asks exactly the assignments
that have no answer yet, and the finished store and curve equal the uninterrupted run's."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from alloop.store import LabelStore

ROOT = Path(__file__).resolve().parents[1]

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
            if count == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        return seq

    loop.store.append = append_then_die
    loop.run(resume="--resume" in sys.argv)
    """
)


def config(tmp_path: Path, name: str) -> Path:
    # Dawid-Skene: its labels depend on the set of votes, not on their order in the log, which
    # parallel annotators make vary from run to run (majority's tie rule reads the order).
    data = {
        "name": name,
        "seed": 3,
        "data": {"source": "sklearn:digits", "max_items": 400},
        "model": {"kind": "logistic", "C": 1.0},
        "strategy": {"name": "entropy"},
        "loop": {"initial": 12, "batch_size": 10, "rounds": 3},
        "oracle": {"annotators": [{"id": "ana", "noise": 0.2}, {"id": "bob", "noise": 0.3}],
                   "k": 2, "label_rule": "dawid-skene"},
        "store": {"path": str(tmp_path / f"{name}.sqlite")},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def contents(path: Path):
    with LabelStore(path) as store:
        answers = sorted((a.round, a.item_id, a.annotator, repr(a.label), a.kind) for a in store.answers())
        rounds = store.completed_rounds()
        curve = [(r, d["n_labeled"], d["metrics"]["accuracy"]) for r, d in sorted(rounds.items())]
        assignments = {r: store.assignments(r) for r in rounds}
        assert store.verify() is None
    return answers, curve, assignments


def test_k2_kill_mid_round_then_resume_equals_the_uninterrupted_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    reference = config(tmp_path, "reference")
    done = run(tmp_path, str(child), str(reference), uri, "-1", "0")
    assert done.returncode == 0, done.stderr

    killed = config(tmp_path, "killed")
    crashed = run(tmp_path, str(child), str(killed), uri, "1", "15")  # 15 of round 1's 20 answers
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with LabelStore(tmp_path / "killed.sqlite") as store:
        partial = store.answers(round=1)
        assert len(partial) == 15
        # some items already have one of their two votes: exactly what resume used to drop
        votes = {}
        for a in partial:
            votes[a.item_id] = votes.get(a.item_id, 0) + 1
        assert 1 in votes.values()
    resumed = run(tmp_path, "-m", "alloop", "run", str(killed), "--tracking-uri", uri,
                  "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr

    ref_answers, ref_curve, ref_assign = contents(tmp_path / "reference.sqlite")
    got_answers, got_curve, got_assign = contents(tmp_path / "killed.sqlite")
    assert len(got_answers) == len(ref_answers) == 2 * (12 + 3 * 10)
    assert got_answers == ref_answers
    assert got_assign == ref_assign
    assert got_curve == ref_curve
