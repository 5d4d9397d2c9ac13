#!/usr/bin/env bash
# `flameshift demo --exit` on the release build (the debug build's
# sampled costs are too noisy for detection to be sure within the demo's
# few minutes): the injected regression is found, the refactor is not.
#
# The demo is a measurement with production thresholds: BENCHMARKS.md
# records 10 of 10 and 9 of 10 runs finding the +15% rise. A run that
# misses it is therefore tried once more (two misses in a row, about 1%
# by those figures, mean detection broke); a flagged refactor, a false
# alarm, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Runs the demo once; 0 when all is as expected, 2 when only the
# regression was missed, 1 for anything else.
run_demo() {
  local status=0
  target/release/flameshift demo --exit --listen 127.0.0.1:0 | tee "$out" || status=$?
  for d in v1 v2 v3; do
    grep -q "^\[$d\] served" "$out" || { echo "demo-check: deploy $d did not run" >&2; return 1; }
  done
  grep -q '^refactor not flagged' "$out" || { echo "demo-check: the refactor was flagged" >&2; return 1; }
  if ! grep -q '^regression found: .*score_items on GET /feed in deploy v2 (vs v1)' "$out"; then
    echo "demo-check: the regression line is missing" >&2
    return 2
  fi
  if [ "$status" -ne 0 ]; then
    echo "demo-check: flameshift demo --exit exited with $status" >&2
    return 1
  fi
}

result=0
run_demo || result=$?
if [ "$result" -eq 2 ]; then
  echo "demo-check: the regression was missed once; running the demo again" >&2
  result=0
  run_demo || result=$?
fi
[ "$result" -eq 0 ] || exit 1
echo "demo-check: ok"
