#!/usr/bin/env bash
# Runs benchmark configs one after another with `alloop compare --jobs 2`, timing each.
#   experiments/benchmarks/run_suite.sh DB CONFIG...   (from the repository root)
# DB: an MLflow sqlite file; each config's wall time and CPU time (the compare and its workers)
# go to DB's folder, timings.tsv.
set -euo pipefail
db=$1; shift
mkdir -p "$(dirname "$db")"
alloop=${ALLOOP:-alloop}
# CPU seconds (user + system) of this shell's finished children, from bash's `times`
# (`times` must run in this shell, not in a subshell, so it writes to a file that is read after)
cpu_file=$(mktemp)
trap 'rm -f "$cpu_file"' EXIT
cpu_seconds() {
  tail -n 1 "$cpu_file" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.1f", s }'
}
for cfg in "$@"; do
  start=$(date +%s); times > "$cpu_file"; cpu0=$(cpu_seconds)
  nice -n 19 $alloop compare "$cfg" --jobs 2 --tracking-uri "sqlite:///$db"
  times > "$cpu_file"; cpu1=$(cpu_seconds)
  printf '%s\t%s\t%s\t%s\n' "$cfg" "$(( $(date +%s) - start ))" "$(date -u +%FT%TZ)" \
    "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.0f", b - a }')" >> "$(dirname "$db")/timings.tsv"
done
