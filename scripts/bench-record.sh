#!/usr/bin/env bash
# Overhead of `flameshift record` on the profiled program, against
# `perf record` at the same frequency and call-graph mode, in one run; then
# post-processing time of a long recording against
# `perf script | inferno-collapse-perf`.
#
# The target (fixtures/hot/hot.rs, built here with frame pointers) prints
# its own run time, so the overhead is what the target feels, not the
# profiler's start-up or write-out.
#
#   scripts/bench-record.sh [RUNS] [LONG_SECONDS]     (defaults 10 and 60)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
long="${2:-60}"
out=bench-data/record
mkdir -p "$out"
cargo build --release --quiet --locked --bin flameshift
fs=$PWD/target/release/flameshift
rustc -O -C force-frame-pointers=yes -o "$out/hot" fixtures/hot/hot.rs
rounds=60

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
target_ms() { # runs "$@" $runs times, prints the median of the target's own elapsed_ms
  for _ in $(seq "$runs"); do "$@" 2>&1 >/dev/null | awk '/^elapsed_ms/ {print $2}'; done | median
}

echo "== overhead on the target (median of $runs runs of hot $rounds, ms of the target's own clock)"
base=$(target_ms "$out/hot" $rounds)
printf '%-44s %8s ms\n' "no profiler" "$base"
for hz in 99 999; do
  for cg in fp dwarf; do
    perf_cg=$([ "$cg" = fp ] && echo "-g" || echo "--call-graph dwarf")
    # shellcheck disable=SC2086
    p=$(target_ms perf record -q $perf_cg -F "$hz" -o "$out/perf.data" -- "$out/hot" $rounds)
    f=$(target_ms "$fs" record -F "$hz" --call-graph "$cg" -o "$out/fs.pb.gz" -- "$out/hot" $rounds)
    printf '%-44s %8s ms  (+%s%%)\n' "perf record $perf_cg -F $hz" "$p" "$(awk -v a="$p" -v b="$base" 'BEGIN {printf "%.1f", 100*(a-b)/b}')"
    printf '%-44s %8s ms  (+%s%%)\n' "flameshift record --call-graph $cg -F $hz" "$f" "$(awk -v a="$f" -v b="$base" 'BEGIN {printf "%.1f", 100*(a-b)/b}')"
  done
done

echo "== post-processing a ${long}-second recording at 999 Hz (frame pointers)"
long_rounds=$((rounds * long * 1000 / ${base%.*}))
start=$(date +%s.%N)
target=$("$fs" record -F 999 --call-graph fp -o "$out/long.folded" -- "$out/hot" $long_rounds 2>&1 >/dev/null | awk '/^elapsed_ms/ {print $2}')
end=$(date +%s.%N)
fs_post=$(awk -v s="$start" -v e="$end" -v t="$target" 'BEGIN {printf "%.0f", (e-s)*1000 - t}')
perf record -q -g -F 999 -o "$out/long.data" -- "$out/hot" $long_rounds >/dev/null 2>&1
samples=$(wc -l < "$out/long.folded")
start=$(date +%s.%N)
perf script -i "$out/long.data" 2>/dev/null | inferno-collapse-perf > "$out/long.inferno.folded"
end=$(date +%s.%N)
perf_post=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", (e-s)*1000}')
echo "target ran ${target} ms; flameshift post-processing (total - target): ${fs_post} ms"
echo "perf script | inferno-collapse-perf: ${perf_post} ms  ($samples distinct stacks)"
