"""The default thread count and the CLI's import graph (what a command loads, not how fast)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alloop.threads import default_threads


@pytest.mark.parametrize(
    "cores, load, expected",
    [(16, 0.0, 16), (16, 0.3, 15), (16, 15.5, 1), (2, 4.0, 1), (2, 0.9, 1), (4, 1.0, 3)],
)
def test_default_threads_uses_the_idle_cores(cores, load, expected):
    assert default_threads(cpu_count=cores, load=load) == expected


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()
    return {m.split(".")[0] for m in out}


def test_config_validation_imports_no_torch_mlflow_or_ray():
    loaded = _modules_after("import alloop.config")
    assert not loaded & {"torch", "mlflow", "ray"}


def test_cli_help_imports_no_torch_mlflow_or_ray():
    loaded = _modules_after(
        "from typer.testing import CliRunner\nfrom alloop.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert not loaded & {"torch", "mlflow", "ray"}
