#!/usr/bin/env bash
# `flameshift demo --exit` on the release build (the debug build's
# sampled costs are too noisy for detection to be sure within the demo's
# few minutes): the injected regression is found, the refactor is not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
target/release/flameshift demo --exit --listen 127.0.0.1:0 | tee "$out" || status=$?
if [ "$status" -ne 0 ]; then
  echo "demo-check: flameshift demo --exit exited with $status" >&2
  exit 1
fi
grep -q '^regression found: .*score_items on GET /feed in deploy v2 (vs v1)' "$out" \
  || { echo "demo-check: the regression line is missing" >&2; exit 1; }
grep -q '^refactor not flagged' "$out" || { echo "demo-check: the refactor was flagged" >&2; exit 1; }
for d in v1 v2 v3; do
  grep -q "^\[$d\] served" "$out" || { echo "demo-check: deploy $d did not run" >&2; exit 1; }
done
echo "demo-check: ok"
