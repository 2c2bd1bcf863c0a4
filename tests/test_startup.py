"""Start-up: listing strategies and validating a config import no torch, MLflow, Ray,
scikit-learn or modAL (the import graph is tested, not the time; figures in
benchmarks/results/peers.md)."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = {"torch", "mlflow", "ray", "sklearn", "modAL", "pandas", "matplotlib"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=True)


def _heavy_modules_after(code: str) -> set[str]:
    out = _run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"])
    return {m.split(".")[0] for m in out.stdout.split()} & HEAVY


def test_alloop_strategies_lists_every_strategy_without_heavy_imports():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['alloop', 'strategies']\n"
        "try:\n    runpy.run_module('alloop', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert _heavy_modules_after(code) == set()
    listing = _run([sys.executable, "-m", "alloop", "strategies"]).stdout
    # every strategy a fresh process registers (this process may hold test-only ones)
    names = _run([sys.executable, "-c", "import strategies; print(*strategies.available())"])
    assert len(names.stdout.split()) > 10
    for name in names.stdout.split():
        assert name in listing


def test_registry_and_options_models_import_no_heavy_module():
    code = (
        "import strategies\n"
        "for name in strategies.available():\n"
        "    s = strategies.get(name)\n"
        "    if s.options is not None:\n"
        "        s.options.model_json_schema()\n"
        "from alloop.config import load_config\n"
        "load_config('experiments/quickstart.yaml')\n"
    )
    assert _heavy_modules_after(code) == set()


def test_heavy_import_waits_for_use():
    # the lazy import still happens when a strategy is scored
    code = (
        "import numpy as np, strategies\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = np.arange(8.0).reshape(4, 2); m = LogisticRegression().fit(X, [0, 0, 1, 1])\n"
        "assert strategies.get('margin').score(m, X).shape == (4,)\n"
    )
    assert {"modAL", "sklearn"} <= _heavy_modules_after(code)


def test_regularity_batch_size_copy_matches_the_scores_module():
    from alloop.regularity.batched import BATCH_SIZE
    from strategies.regularity import BATCH_SIZE as COPY

    assert COPY == BATCH_SIZE
