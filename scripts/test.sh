#!/usr/bin/env bash
# One command from a fresh clone: set up .venv and run the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# chromium, postgresql, a Label Studio server: what the end-to-end tests run against
bash "$root/scripts/system_deps.sh"
cd "$root"
.venv/bin/ruff check .
# the import layering of pyproject.toml's [tool.importlinter] contracts
.venv/bin/lint-imports
# two workers on the 2-core CI machine; PYTEST_WORKERS=0 runs in one process
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" "$@"
