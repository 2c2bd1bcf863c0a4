#!/usr/bin/env bash
# Runs benchmark configs one after another with `alloop compare --jobs 2`, timing each.
#   experiments/benchmarks/run_suite.sh DB CONFIG...   (from the repository root)
# DB: an MLflow sqlite file; each config's wall time goes to DB's folder, timings.tsv.
set -euo pipefail
db=$1; shift
mkdir -p "$(dirname "$db")"
alloop=${ALLOOP:-alloop}
for cfg in "$@"; do
  start=$(date +%s)
  nice -n 19 $alloop compare "$cfg" --jobs 2 --tracking-uri "sqlite:///$db"
  printf '%s\t%s\t%s\n' "$cfg" "$(( $(date +%s) - start ))" "$(date -u +%FT%TZ)" >> "$(dirname "$db")/timings.tsv"
done
