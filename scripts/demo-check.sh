#!/usr/bin/env bash
# `flameshift demo --exit` on the release build (the debug build's
# sampled costs are too noisy for detection to be sure within the demo's
# few minutes): the injected regression is found, the refactor is not.
#
# The demo is one measurement with production thresholds on a shared
# 2-core machine: BENCHMARKS.md records its runs (20 found the +15% rise
# without a false alarm, one missed it, one CI run flagged the refactor
# while the machine slowed during v2). A run that fails either way is
# therefore tried once more; two failures in a row mean detection broke.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Runs the demo once; 0 when all is as expected, 2 when detection was
# wrong (the regression missed or the refactor flagged), 1 when the
# demo itself did not run through.
run_demo() {
  local status=0
  target/release/flameshift demo --exit --listen 127.0.0.1:0 | tee "$out" || status=$?
  for d in v1 v2 v3; do
    grep -q "^\[$d\] served" "$out" || { echo "demo-check: deploy $d did not run" >&2; return 1; }
  done
  grep -q '^refactor not flagged' "$out" || { echo "demo-check: the refactor was flagged" >&2; return 2; }
    if ! grep -q '^regression found: .*score_items on GET /feed in deploy v2 (vs v1)' "$out"; then
    echo "demo-check: the regression line is missing" >&2
    return 2
  fi
  # Its price in cores, against the load the demo sent.
  if ! grep -q 'capacity check ok$' "$out"; then
    echo "demo-check: the regression's capacity does not match the demo's load" >&2
    return 1
  fi
  if [ "$status" -ne 0 ]; then
    echo "demo-check: flameshift demo --exit exited with $status" >&2
    return 1
  fi
}

result=0
run_demo || result=$?
if [ "$result" -eq 2 ]; then
  echo "demo-check: detection was wrong once; running the demo again" >&2
  result=0
  run_demo || result=$?
fi
[ "$result" -eq 0 ] || exit 1
echo "demo-check: ok"
