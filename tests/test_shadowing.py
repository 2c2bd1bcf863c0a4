"""Running Python from the folder above a clone named ``alloop/`` still imports the package.

With setuptools' default editable install (a meta-path finder appended after the path finder),
the clone itself is found first as a namespace package and ``from alloop import ActiveLoop``
fails with "cannot import name ... (unknown location)". scripts/bootstrap.sh installs in compat
mode, which makes the checkout a sys.path entry, where the regular package wins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_clone_named_alloop_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    (tmp_path / "alloop").symlink_to(ROOT, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "from alloop import ActiveLoop; print(ActiveLoop.__module__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alloop.loop.core"  # the real package, not the clone as a namespace
