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
stamp=.venv/.alloop-installed-compat
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # compat: the checkout is a sys.path entry, so a folder named alloop/ in the working
  # directory (the parent of a clone called alloop) cannot shadow the package as a namespace
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]" \
    --config-settings editable_mode=compat
  touch "$stamp"
fi
