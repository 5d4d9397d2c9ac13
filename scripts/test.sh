#!/usr/bin/env bash
# The test command from the README: formatting, lints, every test of every
# crate (unit, integration, property, golden, doc), then the
# interoperability check against Go's own pprof tool.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features --locked
echo "== interop: go tool pprof reads what flameshift writes"
scripts/interop-go.sh
