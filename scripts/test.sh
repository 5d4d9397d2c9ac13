#!/usr/bin/env bash
# The test command from the README: formatting, lints, every test of every
# crate (unit, integration, property, golden, doc; the dashboard's in
# headless Chromium, screenshots in target/dashboard-screenshots/), the
# ClickHouse store on a real clickhouse-server with its SQL replayed on a
# current ClickHouse through chdb, the demo end to end on the release
# build, the change-point corpus check, then the interoperability check
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
# The ClickHouse store's tests start Debian's clickhouse-server (18.16)
# as child processes; chdb (a current ClickHouse engine) replays their SQL.
if [ ! -x /usr/sbin/clickhouse-server ] && ! command -v clickhouse-server >/dev/null 2>&1; then
  echo "== installing clickhouse-server (the ClickHouse store's tests start it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clickhouse-server
fi
if ! python3 -c "import chdb" >/dev/null 2>&1; then
  echo "== pip install chdb (replays the ClickHouse store's SQL on a current engine)"
  python3 -m pip install -q -r scripts/requirements-clickhouse.txt
fi
if ! python3 -c "import pyroscope" >/dev/null 2>&1; then
  echo "== pip install pyroscope-io and OpenTelemetry's profiling SDK (real producers push to flameshift serve in the tests)"
  python3 -m pip install -q -r scripts/requirements-producers.txt
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
sql_log="$PWD/target/clickhouse-sql.log"
mkdir -p target && rm -f "$sql_log"
FLAMESHIFT_CLICKHOUSE_SQL_LOG="$sql_log" cargo test --workspace --all-features --locked
echo "== the ClickHouse store's SQL (run on 18.16 by the tests) on a current ClickHouse (chdb)"
python3 scripts/check-clickhouse-sql.py "$sql_log"
echo "== flameshift demo --exit (release build): the regression found, the refactor not"
scripts/demo-check.sh
echo "== change points on the evaluation corpus (fixtures/changepoints): the default above the zero baseline and the peers' recorded scores"
python3 scripts/changepoint_corpus.py --flameshift target/release/flameshift --methods default --check
echo "== interop: go tool pprof reads what flameshift writes"
scripts/interop-go.sh
