"""The layering, read statically by import-linter from pyproject.toml's contracts.

Every import counts, a function-level one too (a run-time ``sys.modules`` check missed those);
only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("alloop", "strategies", "oracles", "benchmarks")


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports")
    assert exe, "lint-imports is missing: scripts/bootstrap.sh installs it with the dev extras"
    # the tree under test first on the path: grimp finds the packages by importlib
    path = os.pathsep.join(p for p in (str(pythonpath), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_import_contract_is_kept():
    out = lint_imports(ROOT, ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken", flat(out.stdout)), out.stdout


def test_a_back_edge_from_the_math_to_the_loop_breaks_the_contract(tmp_path):
    """A copy of the project with one function-level import from linalg up to the loop."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "alloop" / "linalg" / "cholesky.py"
    target.write_text(target.read_text() + "\n\ndef _back_edge():\n    import alloop.loop  # noqa\n")

    broken = flat(lint_imports(tmp_path, tmp_path).stdout)
    math = "The math and the data import nothing above them: no loop, oracles, store, tracking, " \
        "config, CLI, strategies or MLflow"
    assert f"{math} BROKEN" in broken
    assert "alloop.linalg.cholesky -> alloop.loop" in broken
    kept = flat(lint_imports(ROOT, ROOT).stdout)
    assert f"{math} KEPT" in kept and "alloop.linalg.cholesky -> alloop.loop" not in kept


def test_the_loop_loads_no_optional_engine():
    """Ray, the web stack, Label Studio and PostgreSQL drivers load only when configured."""
    code = (
        "import sys, alloop, alloop.loop, alloop.experiment, strategies, oracles; "
        "heavy = ('ray', 'fastapi', 'uvicorn', 'label_studio_sdk', 'playwright', 'psycopg'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
