"""The math packages load without the loop, the oracles or MLflow."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "package",
    ["alloop.linalg", "alloop.models", "alloop.tangent", "alloop.regularity", "alloop.influence",
     "alloop.multiuser"],
)
def test_math_package_imports_no_loop_oracles_or_mlflow(package):
    code = (
        f"import sys, {package}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('oracles', 'mlflow') "
        "or m.startswith(('alloop.loop', 'alloop.tracking', 'alloop.store'))); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_loop_loads_no_optional_engine():
    """Ray, the web stack, Label Studio and PostgreSQL drivers load only when configured."""
    code = (
        "import sys, alloop, alloop.loop, alloop.experiment, strategies, oracles; "
        "heavy = ('ray', 'fastapi', 'uvicorn', 'label_studio_sdk', 'playwright', 'psycopg'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
