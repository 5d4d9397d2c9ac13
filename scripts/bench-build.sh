#!/usr/bin/env bash
# The first release build as a newcomer sees it: a clean clone of each
# revision built with `cargo build --release --locked --timings` into a
# fresh target directory, one after the other (the crates are already
# downloaded, so the network is not measured). Prints the wall time of
# each and keeps cargo's timing report.
#   scripts/bench-build.sh [REV...]      (default: HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${OUT:-$repo/target/bench-build}
mkdir -p "$out"
[ $# -gt 0 ] || set -- HEAD
for rev in "$@"; do
  work=$(mktemp -d)
  git clone -q "$repo" "$work/src"
  git -C "$work/src" checkout -q "$rev"
  start=$(date +%s)
  (cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --release --locked --timings --quiet)
  end=$(date +%s)
  name=$(git -C "$work/src" rev-parse --short HEAD)
  cp "$work/target/cargo-timings/cargo-timing.html" "$out/cargo-timing-$name.html"
  echo "bench-build: $rev ($name): $((end - start)) s (timings: $out/cargo-timing-$name.html)"
  rm -rf "$work"
done
