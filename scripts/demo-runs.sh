#!/usr/bin/env bash
# Runs `flameshift demo --exit` N times (default 10) on the release build
# and prints, per run, the seconds to the summary, whether the injected
# regression was found without flagging the refactor, and the reported
# change with its interval; then the success count. The whole output of
# every run is kept in target/demo-runs/run-N.log. BENCHMARKS.md records
# its output ("flameshift demo end to end").
#   scripts/demo-runs.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release --locked --quiet
ok=0
logs=target/demo-runs
mkdir -p "$logs"
printf '%-4s %-8s %-6s %s\n' run seconds result 'regression line'
for i in $(seq 1 "$runs"); do
  out=$logs/run-$i.log
  start=$(date +%s.%N)
  status=0
  target/release/flameshift demo --exit --listen 127.0.0.1:0 >"$out" 2>&1 || status=$?
  end=$(date +%s.%N)
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  line=$(grep -m1 '^regression found\|^regression NOT found' "$out" || true)
  extra=$(grep -m1 '^refactor FLAGGED\|^also reported' "$out" || true)
  if [ "$status" -eq 0 ]; then
    result=ok
    ok=$((ok + 1))
  else
    result=FAIL
  fi
  printf '%-4s %-8s %-6s %s %s\n' "$i" "$seconds" "$result" "$line" "$extra"
done
echo "demo-runs: $ok of $runs found the regression without flagging the refactor"
