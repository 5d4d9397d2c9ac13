#!/usr/bin/env bash
# The test command from the README: formatting, lints, every test of every
# crate (unit, integration, property, golden, doc; the dashboard's in
# headless Chromium, screenshots in target/dashboard-screenshots/), the
# ClickHouse store on a real clickhouse-server with its SQL replayed on a
# current ClickHouse through chdb, the demo end to end on the release
# build, the change-point corpus check, the Python agent (its wheel, its
# tests on CPython 3.11 and its smoke test on 3.9, 3.10, 3.12 and 3.13, the Python
# demo end to end under gunicorn and wrk), `record` and `attach` on
# CPython against py-spy, then the interoperability
# check against Go's own pprof tool.
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
if ! python3 -c "import flask, gunicorn, django, starlette, maturin" >/dev/null 2>&1 || ! command -v py-spy >/dev/null 2>&1 || ! command -v uwsgi >/dev/null 2>&1; then
  echo "== pip install the Python agent's frameworks and maturin (scripts/requirements-python.txt)"
  python3 -m pip install -q -r scripts/requirements-python.txt
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk (the Python demo's load)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk
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
echo "== the Python agent: its wheel (maturin, abi3), its tests on CPython 3.11 against a real serve"
rm -rf target/wheels
python3 -m pip wheel -q --no-build-isolation --no-deps ./python -w target/wheels
python3 -m pip install -q --force-reinstall --no-deps target/wheels/flameshift-*.whl
(cd python/tests && FLAMESHIFT_BIN="$OLDPWD/target/debug/flameshift" python3 -m unittest -v test_agent)
# The same wheel on the other CPython versions pyenv has (the smoke test
# needs no framework).
for version in 3.9 3.10 3.12 3.13; do
  installed=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}\\.[0-9]+$" | tail -1 || true)
  if [ -z "$installed" ]; then
    echo "== CPython $version is not installed here: its smoke test is skipped"
    continue
  fi
  interpreter="$(pyenv root)/versions/$installed/bin/python$version"
  echo "== the Python agent on CPython $installed: the smoke test"
  "$interpreter" -m pip install -q --force-reinstall --no-deps target/wheels/flameshift-*.whl
  (cd python/tests && FLAMESHIFT_BIN="$OLDPWD/target/debug/flameshift" "$interpreter" -m unittest -v test_agent.Smoke)
done
echo "== the Python demo end to end (gunicorn --preload, 2 workers a deploy, wrk in turns): every request counted, the regression named with an interval covering +15%, the refactor not flagged"
python3 scripts/python-demo.py --check --strict-interval || {
  echo "python-demo: wrong or disturbed once; running it again (a shared 2-core machine)" >&2
  python3 scripts/python-demo.py --check --strict-interval
}
# On 3.11-3.13: 3.9 and 3.10 are read by the same code (their layouts are
# checked on real processes by collector/tests/it/cpython.rs), and their
# shares sit further from py-spy's on this workload (BENCHMARKS.md,
# "Python frames in `record` and `attach`"): `--versions 3.9,3.10` runs them.
echo "== record and attach see Python (CPython 3.11-3.13): shares within 5 points of py-spy record, C calls under their Python callers"
python3 scripts/check-python-frames.py --flameshift target/release/flameshift --seconds 4 --versions 3.11,3.12,3.13 || {
  echo "check-python-frames: wrong once; running it again (sampled shares on a shared 2-core machine)" >&2
  python3 scripts/check-python-frames.py --flameshift target/release/flameshift --seconds 4 --versions 3.11,3.12,3.13
}
echo "== change points on the evaluation corpus (fixtures/changepoints): the default above the zero baseline and the peers' recorded scores"
python3 scripts/changepoint_corpus.py --flameshift target/release/flameshift --methods default --check
echo "== interop: go tool pprof reads what flameshift writes"
scripts/interop-go.sh
