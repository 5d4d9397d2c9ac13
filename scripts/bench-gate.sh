#!/usr/bin/env bash
# The gate's false-alarm rate and the smallest regression it catches at
# 5 runs a side, with cpu-clock sampling and with callgrind, on
# fixtures/gate/bench.c (parse 25%, render 35%, sort_items 40% of the time).
#   REPEATS (default 5): comparisons per slowdown; IDENTICAL (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
fs=target/release/flameshift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O1 -g -fno-omit-frame-pointer -o "$work/bench" fixtures/gate/bench.c
repeats=${REPEATS:-5}
identical=${IDENTICAL:-20}

record() { # dir index args...
    local dir=$1 i=$2; shift 2
    mkdir -p "$dir"
    "$fs" record -F 4000 -o "$dir/$i.pb.gz" -- "$work/bench" "$@" 2>/dev/null
}

echo "== sampling (cpu-clock, 4 kHz), 5 runs a side"
pool=$((identical + 9))
for i in $(seq 0 "$pool"); do record "$work/same" "$i"; done
fails=0
for k in $(seq 0 $((identical - 1))); do
    base=(); cand=()
    for j in 0 1 2 3 4; do
        base+=("$work/same/$(( (2 * k + j) % (pool + 1) )).pb.gz")
        cand+=("$work/same/$(( (2 * k + j + 5) % (pool + 1) )).pb.gz")
    done
    if ! "$fs" gate --baseline "${base[@]}" --candidate "${cand[@]}" > /dev/null; then fails=$((fails + 1)); fi
done
echo "identical builds: $fails of $identical comparisons failed"
for pct in 2 5 10 20; do
    caught=0
    for r in $(seq 1 "$repeats"); do
        for i in 0 1 2 3 4; do
            record "$work/b$pct-$r" "$i"
            record "$work/s$pct-$r" "$i" --slow "parse=$pct"
        done
        report=$("$fs" gate --baseline "$work/b$pct-$r" --candidate "$work/s$pct-$r" || true)
        if grep -q '`parse`' <<< "$report"; then
            caught=$((caught + 1))
        fi
    done
    echo "parse +$pct%: caught $caught of $repeats"
done

echo "== callgrind (exact instructions), 1 run a side"
"$fs" record --callgrind -o "$work/cg-base.pb.gz" -- "$work/bench" --units 2 2>/dev/null
"$fs" record --callgrind -o "$work/cg-same.pb.gz" -- "$work/bench" --units 2 2>/dev/null
if "$fs" gate --baseline "$work/cg-base.pb.gz" --candidate "$work/cg-same.pb.gz" > /dev/null; then
    echo "identical builds: pass"
else
    echo "identical builds: FAILED"
fi
for pct in 1 2 2.1 3; do
    "$fs" record --callgrind -o "$work/cg-$pct.pb.gz" -- "$work/bench" --units 2 --slow "parse=$pct" 2>/dev/null
    verdict=$("$fs" gate --baseline "$work/cg-base.pb.gz" --candidate "$work/cg-$pct.pb.gz" | head -1 || true)
    echo "parse +$pct%: $verdict"
done
