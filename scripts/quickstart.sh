#!/usr/bin/env bash
# One command from a fresh clone: set up .venv and run the quickstart experiment
# (digits, logistic regression, entropy sampling, 10 rounds) into ./mlflow.db.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/alloop run experiments/quickstart.yaml "$@"
