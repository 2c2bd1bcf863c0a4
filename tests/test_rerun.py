"""Rerunning a config: ``--fresh`` sets the old store aside; ``--resume`` says what changed."""

import subprocess
import sys
from pathlib import Path

import yaml

from alloop.store import LabelStore


def write_config(tmp_path: Path, **loop) -> Path:
    config = {
        "name": "rerun", "seed": 0,
        "data": {"source": "sklearn:digits", "max_items": 300},
        "model": {"kind": "logistic", "C": 1.0},
        "strategy": {"name": "margin"},
        "loop": {"initial": 10, "batch_size": 5, "rounds": 1, **loop},
        "store": {"path": str(tmp_path / "labels.sqlite")},
    }
    path = tmp_path / "rerun.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def alloop_run(tmp_path: Path, cfg: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alloop", "run", str(cfg), "--no-progress",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )


def test_fresh_archives_the_old_store_and_starts_over(tmp_path):
    cfg = write_config(tmp_path)
    assert alloop_run(tmp_path, cfg).returncode == 0
    refused = alloop_run(tmp_path, cfg)
    assert refused.returncode == 2 and "--fresh" in refused.stderr
    old = LabelStore(tmp_path / "labels.sqlite")
    old_answers = [(a.item_id, a.label) for a in old.answers()]
    old.close()

    again = alloop_run(tmp_path, cfg, "--fresh")
    assert again.returncode == 0, again.stderr
    archived = [p for p in tmp_path.glob("labels.*.sqlite")]
    assert len(archived) == 1 and str(archived[0]) in again.stderr
    kept = LabelStore(archived[0])  # every old answer is still there, under the new name
    assert [(a.item_id, a.label) for a in kept.answers()] == old_answers
    kept.close()
    new = LabelStore(tmp_path / "labels.sqlite")
    assert len(new) == len(old_answers)  # the same run again, from scratch
    new.close()

    both = alloop_run(tmp_path, cfg, "--fresh", "--resume")
    assert both.returncode == 2 and "give one of them" in both.stderr


def test_resume_after_a_config_change_names_each_changed_field_and_the_store(tmp_path):
    cfg = write_config(tmp_path)
    assert alloop_run(tmp_path, cfg).returncode == 0
    changed = write_config(tmp_path, batch_size=7)
    proc = alloop_run(tmp_path, changed, "--resume")
    assert proc.returncode == 2
    message = proc.stderr
    assert "loop.batch_size: 5 in the store, 7 now" in message
    assert f"label store {tmp_path / 'labels.sqlite'} was written" in message
    assert "--fresh" in message and "store.path" in message
    assert "{'seed'" not in message  # no raw fingerprint dict
