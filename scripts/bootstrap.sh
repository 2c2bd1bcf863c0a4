#!/usr/bin/env bash
# Creates .venv (once) and installs alloop with its test extras into it.
# Idempotent: a second call only checks that the install is current.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
# The stamp names the install mode: a venv made before the mode changed is reinstalled.
stamp=.venv/.alloop-installed-pth
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
  # The checkout as a sys.path entry: setuptools' editable finder runs after the path finder,
  # so a folder named alloop/ in the working directory (the parent of a clone called alloop)
  # would otherwise shadow the package as a namespace (tests/test_shadowing.py).
  .venv/bin/python -c 'import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_path("purelib"), "alloop-checkout.pth").write_text(sys.argv[1] + "\n")' "$root"
  touch "$stamp"
fi
