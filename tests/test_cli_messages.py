"""Messages a newcomer meets: the wrong command for a config, --help, SSI bounds, .gitignore."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def alloop(*args, cwd):
    return subprocess.run([sys.executable, "-m", "alloop", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_run_on_a_compare_config_and_compare_on_a_plain_one(tmp_path):
    (tmp_path / "cmp.yaml").write_text(yaml.safe_dump(
        {"name": "cmp", "data": {"source": "sklearn:iris"},
         "compare": {"strategies": ["random", "margin"], "seeds": 2}}))
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(
        {"name": "plain", "data": {"source": "sklearn:iris"}}))
    run = alloop("run", "cmp.yaml", cwd=tmp_path)
    assert run.returncode == 2 and "run alloop compare cmp.yaml" in run.stderr
    assert "unknown field" not in run.stderr
    compare = alloop("compare", "plain.yaml", cwd=tmp_path)
    assert compare.returncode == 2 and "strategies: [random, entropy]" in compare.stderr


def test_help_has_no_bool_markers(tmp_path):
    out = alloop("run", "--help", cwd=tmp_path).stdout
    assert "--resume" in out and "--fresh" in out and "<bool>" not in out


def test_ssi_bound_warning_names_the_option():
    from alloop.models import LinearGLM
    from alloop.regularity.ssi import ssi_directions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 40)
    model = LinearGLM(s=-3.0).fit(X[:30], y[:30])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ssi_directions(model, X[30:], y[30:], bounds=(-3.0, 3.0))
    assert any("strategy.params.s_bounds" in str(w.message) for w in caught)


def test_gitignore_covers_what_runs_leave_behind():
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "reports/x.png", "mlruns/1", "mlflow.db",
         ".alloop/x.sqlite"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == ["reports/x.png", "mlruns/1", "mlflow.db", ".alloop/x.sqlite"]
