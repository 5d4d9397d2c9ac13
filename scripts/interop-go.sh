#!/usr/bin/env bash
# Interoperability: every fixture, converted to pprof by flameshift, must be
# read by Go's own `go tool pprof` (-top must succeed, and -raw must give
# the same total for every sample type as flameshift computes).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1; then
  echo "interop: 'go' not found (apt-get install golang-go); .ci/run installs it" >&2
  exit 1
fi
export GOCACHE="${GOCACHE:-/tmp/flameshift-gocache}"
cargo build --quiet --locked --bin flameshift
bin=target/debug/flameshift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

checked=0
failed=0
for fixture in fixtures/go/cpu.pb.gz fixtures/pprof-rs/cpu.pb fixtures/perf/workload.perf-script \
               fixtures/edge/*.pb fixtures/edge/*.pb.gz fixtures/edge/*.folded; do
  out="$tmp/$(basename "$fixture").pb.gz"
  "$bin" convert "$fixture" -o "$out"
  go tool pprof -top "$out" > "$tmp/top.txt" 2>&1 || { echo "FAIL $fixture: go tool pprof -top: $(tail -1 "$tmp/top.txt")"; failed=$((failed+1)); continue; }
  go tool pprof -raw "$out" > "$tmp/raw.txt" 2>&1
  # The line after "Samples:" names the sample types; sample lines are
  # "v1 v2 ...: loc loc ...".
  read -r -a types < <(awk '/^Samples:/{getline; print; exit}' "$tmp/raw.txt")
  for i in "${!types[@]}"; do
    type="${types[$i]%\[dflt\]}"
    theirs=$(awk -v col=$((i+1)) '
      /^Samples:/ {in_samples = 1; getline; next}
      /^[A-Z]/ {in_samples = 0}
      in_samples && /^ *-?[0-9]+( +-?[0-9]+)*: / {sub(/:.*/, ""); s += $col}
      END {printf "%d", s}' "$tmp/raw.txt")
    ours=$("$bin" convert "$fixture" -o - --format folded --sample-type "$type" | awk '{s += $NF} END {printf "%d", s}')
    if [ "$theirs" != "$ours" ]; then
      echo "FAIL $fixture [$type]: go tool pprof total $theirs, flameshift $ours"
      failed=$((failed+1))
    fi
    checked=$((checked+1))
  done
done
echo "interop: $((checked-failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
