#!/usr/bin/env bash
# The test command from the README: formatting, lints, every test of every
# crate (unit, integration, property, golden, doc; the dashboard's in
# headless Chromium, screenshots in target/dashboard-screenshots/), the
# demo end to end on the release build, then the interoperability check
# against Go's own pprof tool.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard's end-to-end test drives headless Chromium with Playwright.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  echo "== installing chromium (the dashboard's end-to-end test needs it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium
fi
if [ ! -d dashboard/e2e/node_modules/playwright-core ]; then
  echo "== npm ci (Playwright, pinned by dashboard/e2e/package-lock.json)"
  npm ci --prefix dashboard/e2e --no-audit --no-fund
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features --locked
echo "== flameshift demo --exit (release build): the regression found, the refactor not"
scripts/demo-check.sh
echo "== interop: go tool pprof reads what flameshift writes"
scripts/interop-go.sh
