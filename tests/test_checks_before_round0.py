"""A strategy's needs are checked before anything is stored, so the fixed config reruns on the
same label store without deleting it."""

import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import yaml

from alloop import ActiveLoop, Pool
from alloop.loop import LoopSettings
from alloop.models import LinearGLM
from oracles import SimulatedOracle


def config(tmp_path, validation_size):
    return {
        "name": "needs", "seed": 0,
        "data": {"source": "sklearn:diabetes", "validation_size": validation_size},
        "model": {"kind": "linear"},
        "strategy": {"name": "ssi"},
        "loop": {"initial": 10, "batch_size": 5, "rounds": 2},
        "store": {"path": str(tmp_path / "store.sqlite")},
    }


def run(tmp_path, cfg):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "alloop", "run", str(path), "--no-progress",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )


def test_missing_validation_split_fails_before_round_0_and_the_fixed_config_reruns(tmp_path):
    proc = run(tmp_path, config(tmp_path, 0.0))
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'ssi' needs a validation split" in text and "data.validation_size" in text
    store = tmp_path / "store.sqlite"
    if store.exists():  # nothing of the run was stored: no answers, requests or fingerprint
        with sqlite3.connect(store) as conn:
            for table in ("answers", "requests", "rounds"):
                assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'fingerprint'").fetchone()[0] == 0
    fixed = run(tmp_path, config(tmp_path, 0.2))  # same store path, nothing deleted
    assert fixed.returncode == 0, fixed.stderr
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 3


def test_python_loop_refuses_at_construction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -1.0, 0.5] + rng.normal(size=200)
    pool = Pool(X)
    oracle = SimulatedOracle(dict(zip(pool.ids, y, strict=True)))
    with pytest.raises(ValueError, match="'ssi' needs a validation split.*initial set"):
        ActiveLoop(
            pool, LinearGLM(), "ssi", oracle, settings=LoopSettings(initial=10, progress=False)
        )
    # a large enough initial set holds out enough by id hash; an explicit split always does
    ActiveLoop(pool, LinearGLM(), "ssi", oracle, settings=LoopSettings(initial=100, progress=False))
    ActiveLoop(
        pool,
        LinearGLM(),
        "ssi",
        oracle,
        settings=LoopSettings(initial=10, progress=False),
        X_val=X[:20],
        y_val=y[:20],
    )
