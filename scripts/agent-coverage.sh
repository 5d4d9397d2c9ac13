#!/usr/bin/env bash
# Does the reported 95% interval cover the change that was injected?
# Runs `flameshift demo --exit` N times (default 10) for each injected
# rise of `score_items` in v2 (default 5 and 15 percent): the real
# pipeline, agent (999 Hz, 1 s uploads) → serve → detection. Prints, per
# run, the reported change and interval and whether it covers the
# injected value (a run where the rise was not detected counts as not
# covered); then the count per rise. Every run's output is kept in
# target/agent-coverage/. BENCHMARKS.md records its output.
#   scripts/agent-coverage.sh [N] [RISE...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
shift || true
rises=("${@:-5 15}")
read -r -a rises <<<"${rises[*]}"
cargo build --release --locked --quiet
logs=target/agent-coverage
mkdir -p "$logs"
printf '%-5s %-4s %-8s %-34s %s\n' rise run covered 'reported (95% interval)' q
for rise in "${rises[@]}"; do
  covered=0
  for i in $(seq 1 "$runs"); do
    out=$logs/rise-$rise-run-$i.log
    target/release/flameshift demo --exit --listen 127.0.0.1:0 --rise "$rise" >"$out" 2>&1 || true
    line=$(grep -m1 '^regression found' "$out" || true)
    if [ -z "$line" ]; then
      printf '%-5s %-4s %-8s %-34s %s\n' "+$rise%" "$i" no 'not detected' -
      continue
    fi
    # "... per request (95% interval +11.5% … +15.6%), q = 5.5e-05, state open"
    read -r mean low high q < <(echo "$line" | sed -E 's/.*: ([+-][0-9.]+)% per request \(95% interval ([+-][0-9.]+)% … ([+-][0-9.]+)%\), q = ([^,]+),.*/\1 \2 \3 \4/')
    ok=$(awk -v l="$low" -v h="$high" -v r="$rise" 'BEGIN { print (l <= r && r <= h) ? "yes" : "no" }')
    [ "$ok" = yes ] && covered=$((covered + 1))
    printf '%-5s %-4s %-8s %-34s %s\n' "+$rise%" "$i" "$ok" "$mean% [$low%, $high%]" "$q"
  done
  echo "agent-coverage: +$rise% covered in $covered of $runs runs"
done
