#!/usr/bin/env bash
# Overhead of the in-process agent on a real service: `flameshift
# demo-service` (axum) without and with the agent, loaded by wrk on
# loopback, alternating runs. Reports requests/s, latency, and the
# service's own CPU time per request (utime + stime from /proc, which
# is what the agent costs; throughput on 2 cores shared with wrk is
# noisier). The agent runs at its default 99 Hz and builds a profile
# every 10 s; with --analyzer it also ships them (to a local analyzer).
# The peer is pprof-rs at 99 Hz on the same GET /feed work
# (fixtures/peer-pprof-rs, built here), with its own no-profiler baseline.
#
#   scripts/bench-agent.sh [SECONDS] [ROUNDS]      (defaults 20 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
rounds="${2:-3}"
cargo build --release --quiet --locked --bin flameshift
fs=$PWD/target/release/flameshift
CARGO_TARGET_DIR="${PEER_TARGET:-/tmp/flameshift-peer-target}" \
  cargo build --release --quiet --locked --manifest-path fixtures/peer-pprof-rs/Cargo.toml
peer="${PEER_TARGET:-/tmp/flameshift-peer-target}/release/peer-pprof-rs"
out=bench-data/agent
mkdir -p "$out"
rm -rf "$out/data"
"$fs" serve --listen 127.0.0.1:7499 --data "$out/data" 2>"$out/serve.log" &
analyzer=$!
trap 'kill $analyzer 2>/dev/null || true' EXIT
sleep 1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # label, command...
  local label=$1; shift
  "$@" 2>"$out/service.log" &
  local pid=$!
  sleep 1
  wrk -t1 -c8 -d2s http://127.0.0.1:7498/feed >/dev/null # warm up
  local before; before=$(cpu_ticks $pid)
  local report; report=$(wrk -t1 -c8 -d"${seconds}s" --latency http://127.0.0.1:7498/feed)
  local after; after=$(cpu_ticks $pid)
  kill -TERM $pid; wait $pid || true
  local requests; requests=$(echo "$report" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
  local p50; p50=$(echo "$report" | awk '$1 == "50%" {print $2}')
  local p99; p99=$(echo "$report" | awk '$1 == "99%" {print $2}')
  local hz; hz=$(getconf CLK_TCK)
  local us; us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  printf '%-28s %10s req/s  p50 %8s  p99 %8s  CPU/request %8s µs\n' "$label" "$rps" "$p50" "$p99" "$us"
}

echo "== demo-service GET /feed, wrk -t1 -c8 -d${seconds}s, $rounds alternating rounds"
for round in $(seq "$rounds"); do
  run "no agent" "$fs" demo-service --listen 127.0.0.1:7498 --no-agent
  run "agent, 99 Hz, not shipping" "$fs" demo-service --listen 127.0.0.1:7498 --deploy v1
  run "agent, 99 Hz, shipping" "$fs" demo-service --listen 127.0.0.1:7498 --deploy v1 --analyzer http://127.0.0.1:7499
  run "peer: no profiler" "$peer" 127.0.0.1:7498 --no-profiler
  run "peer: pprof-rs, 99 Hz" "$peer" 127.0.0.1:7498
done
