#!/usr/bin/env bash
# flameshift vs inferno on the same large perf capture, in one run.
# Needs hyperfine (apt-get install hyperfine) and inferno's binaries
# (cargo install inferno). Prints hyperfine's tables; BENCHMARKS.md records them.
#
#   scripts/bench-inferno.sh [SIZE_MB]     (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
mb="${1:-120}"
data=bench-data
mkdir -p "$data"
capture="$data/big-${mb}mb.perf-script"
[ -f "$capture" ] || scripts/gen-perf-script.py --mb "$mb" > "$capture"
cargo build --release --quiet --locked --bin flameshift
fs=target/release/flameshift
inferno-collapse-perf "$capture" > "$data/big.folded"
echo "capture: $(du -h "$capture" | cut -f1), $(grep -c '^$' "$capture") samples; folded: $(wc -l < "$data/big.folded") stacks"
echo "$(cargo install --list | grep '^inferno ' | tr -d :), $(hyperfine --version)"

echo "== collapse: perf script -> folded stacks"
hyperfine -w 1 -r 10 --output=null -N \
  "inferno-collapse-perf $capture" \
  "$fs convert $capture -o - --format folded"

echo "== render: folded stacks -> SVG"
# flameshift colours by a hash of the name (stable across runs), which is
# inferno's --deterministic; inferno's default picks random colours.
hyperfine -w 1 -r 10 --output=null -N \
  "inferno-flamegraph $data/big.folded" \
  "inferno-flamegraph --deterministic $data/big.folded" \
  "$fs flamegraph $data/big.folded -o -"

echo "== whole pipeline: perf script -> SVG"
hyperfine -w 1 -r 10 --output=null \
  "inferno-collapse-perf $capture | inferno-flamegraph" \
  "$fs flamegraph $capture -o -"
