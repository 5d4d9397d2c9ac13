#!/usr/bin/env bash
# Change points on the fleet simulator's cost series: flameshift's
# E-Divisive and PELT against ruptures (PELT, l2, jump=1, the same
# MBIC-like penalty 3·σ²·ln n) and Apache Otava (defaults), all on the
# same series, F1 with a 5-point margin, and time (in-process, imports
# and process start excluded). Installs the peers from PyPI into a
# virtualenv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet ruptures==1.1.10 apache-otava==0.8.0 numpy
fi
cargo bench -p flameshift-detect --features sim --bench changepoint_series
"$venv/bin/python" scripts/changepoint_peers.py target/changepoint-series.json
