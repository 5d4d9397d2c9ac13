#!/usr/bin/env python3
"""The Python demo end to end: a Flask service (fixtures/python-demo/app.py)
under gunicorn with 2 workers (`--preload`: the agent starts in the
master and each forked worker restarts it), deploy v1, then v2, both
left up and loaded by wrk in turns (v1 first, v2 last), shipping to a
real `flameshift serve`; then detection.

v2 makes `score_items` of GET /feed 15% more expensive and moves cost
from `parse_order` to `validate_order` inside POST /orders (a refactor:
the endpoint's cost unchanged). Expected: the regression named with its
function, file, endpoint and deploy, its interval covering +15%; the
refactor not flagged; the requests the analyzer counted equal to those
wrk completed (within 1%). With --check, miscounted requests or a demo
that did not run fail; detection's verdicts fail too with
--strict-interval.

Unchanged functions are the run's control: the median change of their
cost per request from v1 to v2 is what the machine did to every
function of v2. The interval must cover +15%, or the rise the machine
delivered, (1 + 15%) × (1 + that change) − 1 (a run whose control moved
+3.1% read +18.0% [+16.6%, +19.2%]), widened by how far the farthest
unchanged function lies from their median (at most 5 points: single
functions move by a few points around it); a flag on the refactor
whose interval reaches down into that drift is said, not failed. And on a shared 2-core machine a
deploy's processes sometimes run slow throughout (every function of v2,
changed or not, +35 to +45% in one run of three on 2026-12-07): when
the control moves by more than 8%, the run is said to be disturbed and
detection's verdicts are not judged (exit 3 with --check):
scripts/test.sh runs the demo again.

    pip install ./python && pip install -r scripts/requirements-python.txt
    cargo build --release
    python3 scripts/python-demo.py [--seconds 40] [--turn 5] [--frequency 999] [--check]

Prints what it found; with --check exits 1 when an expectation failed
(2 when the demo itself did not run, 3 when the machine disturbed it).
Needs wrk and gunicorn.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import statistics
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "fixtures", "python-demo")
SERVICE = "pyshop"
RISE = 0.15
#: Functions v2 leaves as they are, on their endpoints: the run's control.
UNCHANGED = [("load_feed", "GET /feed"), ("render_feed", "GET /feed"), ("price_order", "POST /orders"),
             ("lookup_user", "GET /users/<int:uid>")]
#: How far the control may move before the run is not judged.
DISTURBED = 0.08
#: The most the interval is widened by the control's spread.
SLACK = 0.05


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def api(url, method="GET"):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def start_serve(flameshift, work):
    settings = os.path.join(work, "detect.json")
    with open(settings, "w") as f:
        # 3-second windows over 1-second buckets, as `flameshift demo`.
        json.dump({"window_ms": 3000, "min_windows": 6}, f)
    serve = subprocess.Popen(
        [flameshift, "serve", "--listen", "127.0.0.1:0", "--data", os.path.join(work, "data"),
         "--bucket", "1s", "--detect-settings", settings, "--detect-interval", "3600s"],
        stderr=subprocess.PIPE, text=True,
    )
    for line in serve.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return serve, found.group(1)
    raise RuntimeError("flameshift serve did not start")


def start_deploy(deploy, analyzer, frequency, work):
    """A deploy's gunicorn (2 workers, the agent started in the master and
    again in each forked worker); its process, port and log."""
    port = free_port()
    env = dict(os.environ,
               FLAMESHIFT_SERVICE=SERVICE, FLAMESHIFT_DEPLOY=deploy, FLAMESHIFT_ANALYZER=analyzer,
               FLAMESHIFT_UPLOAD_INTERVAL="1", FLAMESHIFT_FREQUENCY=str(frequency),
               FLAMESHIFT_HOST="demo-host")
    log = open(os.path.join(work, f"gunicorn-{deploy}.log"), "w")
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--chdir", APP, "app:app"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
    except RuntimeError:
        stop_deploy((gunicorn, port, log))
        raise
    return gunicorn, port, log


def stop_deploy(running):
    """Workers ship what they hold at exit (atexit), then the master."""
    gunicorn, _, log = running
    gunicorn.send_signal(signal.SIGTERM)
    gunicorn.wait(timeout=60)
    log.close()


def load(port, seconds):
    """wrk on one deploy for `seconds`; the requests it completed."""
    wrk = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", os.path.join(APP, "load.lua"), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    )
    return int(re.search(r"(\d+) requests in", wrk.stdout).group(1))


def run_deploys(analyzer, seconds, turn, frequency, work):
    """Deploy v1, then v2, both left up; wrk loads them in turns of `turn`
    seconds (v1 first, v2 last: the newest deploy), `seconds` each in
    all. Consecutive 40-second runs of one deploy on a shared 2-core
    machine differ by up to 10% in exact CPU per request, and within a
    run by up to 20% over tens of seconds (BENCHMARKS.md, "Detection on
    the Python demo"): turns make a slow stretch fall on both deploys.
    The requests wrk completed, per deploy."""
    running = {}
    completed = {"v1": 0, "v2": 0}
    try:
        for deploy in completed:
            running[deploy] = start_deploy(deploy, analyzer, frequency, work)
        turns = max(1, round(seconds / turn))
        for _ in range(turns):
            for deploy in completed:
                completed[deploy] += load(running[deploy][1], turn)
    finally:
        for deploy in running.values():
            stop_deploy(deploy)
    for deploy, count in completed.items():
        print(f"[{deploy}] wrk completed {count} requests in {turns} turns of {turn} s", flush=True)
    return completed


def frame(name):
    """`score_items (app.py)` → (`score_items`, `app.py`)."""
    found = re.match(r"^(.*) \((.*)\)$", name or "")
    return (found.group(1), found.group(2)) if found else (name, None)


def drift(analyzer):
    """The median change of the unchanged functions' self cost per
    request from v1 to v2, and how far the farthest of them lies from it
    (`(None, 0)` when none was sampled in both)."""
    ratios = []
    for function, endpoint in UNCHANGED:
        per_request = {}
        for deploy in ("v1", "v2"):
            query = urllib.parse.urlencode({"service": SERVICE, "deploy": deploy, "endpoint": endpoint,
                                            "limit": 1000})
            listing = api(f"{analyzer}/api/v1/functions?{query}")
            per_request[deploy] = next((f.get("self_per_request") for f in listing.get("functions", [])
                                        if frame(f["name"])[0] == function), None)
        if per_request["v1"] and per_request["v2"]:
            ratios.append(per_request["v2"] / per_request["v1"])
    if not ratios:
        return None, 0.0
    median = statistics.median(ratios)
    return median - 1, max(abs(r - median) for r in ratios)


def check(analyzer, completed, strict_interval=False):
    """The expectations: a list of failures (empty: all held), and
    whether the machine disturbed the run (its verdicts not judged)."""
    failures = []
    api(f"{analyzer}/api/v1/detect", method="POST")
    moved, spread = drift(analyzer)
    disturbed = moved is not None and abs(moved) > DISTURBED
    if moved is not None:
        print(f"unchanged functions, v1 to v2: {moved:+.1%} (median cost per request; "
              f"the farthest {spread:.1%} from it)")
    if disturbed:
        print(f"python-demo: the machine disturbed this run: unchanged functions moved {moved:+.1%} "
              f"from v1 to v2 (more than {DISTURBED:.0%}); detection's verdicts are not judged",
              file=sys.stderr)
        strict_interval = False
    listing = api(f"{analyzer}/api/v1/regressions?service={SERVICE}")
    regressions = listing.get("regressions", [])
    for r in regressions:
        rel = r.get("relative") or {}
        print(f"reported: {r.get('cause') or r.get('function') or '(total)'} on {r['endpoint']} in "
              f"{r['deploy_after']} ({r['measure']}): {rel.get('mean', 0):+.1%} "
              f"[{rel.get('low', 0):+.1%}, {rel.get('high', 0):+.1%}], q = {r['q_value']:.1e}")
    found = [r for r in regressions
             if frame(r.get("cause") or r.get("function"))[0] == "score_items"
             and r["endpoint"] == "GET /feed" and r["deploy_after"] == "v2"]
    if not found:
        message = "score_items on GET /feed in v2 was not reported"
        if strict_interval:
            failures.append(message)
        else:
            print(f"python-demo: warning: {message}", file=sys.stderr)
    else:
        r = found[0]
        name, file = frame(r.get("cause") or r.get("function"))
        rel = r.get("relative") or {}
        if file != "app.py":
            failures.append(f"the regression names file {file!r}, not app.py")
        # The rise the machine delivered: the code's +15% times what the
        # machine did to every function of v2 (the control). A run whose
        # unchanged code moved +3% read +18.0% [+16.6%, +19.2%], right
        # for what ran, though it misses +15%.
        delivered = RISE if moved is None else (1 + RISE) * (1 + moved) - 1
        # One function moves around the control's median by a few points
        # too (−6.1 to +0.1% around −2.3% in a CI run of a215425, where
        # `score_items` read +10.9%): the interval is widened by the
        # farthest unchanged function's distance, at most SLACK.
        slack = min(spread, SLACK)
        low, high = rel.get("low", 1) - slack, rel.get("high", 0) + slack
        covered = [t for t in (RISE, delivered) if low <= t <= high]
        if not covered:
            # Said, and a failure with --strict-interval (BENCHMARKS.md,
            # "Detection on the Python demo").
            message = (f"its interval [{rel.get('low'):+.1%}, {rel.get('high'):+.1%}], ±{slack:.1%} for the "
                       f"control's spread, misses +15% and the {delivered:+.1%} the machine delivered")
            if strict_interval:
                failures.append(message)
            else:
                print(f"python-demo: warning: {message}", file=sys.stderr)
        else:
            what = "+15%" if RISE in covered else f"{delivered:+.1%} (+15% with the control's {moved:+.1%})"
            if not rel.get("low", 1) <= covered[0] <= rel.get("high", 0):
                what += f", within the control's spread of ±{slack:.1%}"
            print(f"regression found: {name} ({file}) on GET /feed in deploy v2 (vs v1), "
                  f"{rel['mean']:+.1%} [{rel['low']:+.1%}, {rel['high']:+.1%}]: covers {what}")
    refactor = [r for r in regressions
                if frame(r.get("cause") or r.get("function"))[0] in ("parse_order", "validate_order")]
    # A flag on the refactor whose rise the machine's own drift explains
    # (its interval reaches down to the control's change, widened by the
    # control's spread) is said, not failed: a CI run of 96382a8 flagged
    # `validate_order` at +3.2% [+1.1%, +4.6%] on POST /orders while the
    # unchanged functions moved +1.1%, one of them 3.8% from that. A
    # detector that mistook the refactor (validate_order doubled,
    # parse_order a third down) would read far above that.
    machine, slack = (0.0 if moved is None else moved), min(spread, SLACK)
    within = [r for r in refactor if (r.get("relative") or {}).get("low", 1) - slack <= machine]
    for r in within:
        rel = r.get("relative") or {}
        print(f"python-demo: warning: {frame(r.get('cause') or r.get('function'))[0]} flagged at "
              f"{rel.get('mean', 0):+.1%} [{rel.get('low', 0):+.1%}, {rel.get('high', 0):+.1%}], within the "
              f"machine's drift ({machine:+.1%}, ±{slack:.1%}): not counted against the refactor", file=sys.stderr)
    refactor = [r for r in refactor if r not in within]
    if refactor:
        message = "the refactor was flagged: " + ", ".join(
            frame(r.get("cause") or r.get("function"))[0] for r in refactor)
        if strict_interval:
            failures.append(message)
        else:
            print(f"python-demo: warning: {message}", file=sys.stderr)
    else:
        print("refactor not flagged" + (" beyond the machine's drift" if within else ""))
    deploys = api(f"{analyzer}/api/v1/services/{SERVICE}/deploys")["deploys"]
    for d in deploys:
        wrk = completed.get(d["deploy"])
        if wrk is None:
            continue
        off = abs(d["requests"] - wrk) / wrk
        print(f"[{d['deploy']}] requests counted {d['requests']}, wrk completed {wrk} ({off:.2%} apart)")
        if off > 0.01:
            failures.append(f"{d['deploy']}: {d['requests']} requests counted, wrk completed {wrk}")
    return failures, disturbed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flameshift", default=os.path.join(ROOT, "target", "release", "flameshift"))
    parser.add_argument("--seconds", type=int, default=40, help="seconds of load per deploy")
    parser.add_argument("--turn", type=int, default=5,
                        help="seconds of each turn of load (v1, v2, v1, v2, ...)")
    parser.add_argument("--frequency", type=int, default=999, help="the agent's samples a second")
    parser.add_argument("--check", action="store_true", help="exit 1 when an expectation failed")
    parser.add_argument("--strict-interval", action="store_true",
                        help="with --check, detection's verdicts fail too (missed, flagged refactor, interval)")
    parser.add_argument("--keep", help="keep the data directory and logs here")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="flameshift-python-demo-")
    os.makedirs(work, exist_ok=True)
    serve, analyzer = start_serve(args.flameshift, work)
    print(f"flameshift serve at {analyzer}; data in {work}", flush=True)
    try:
        try:
            completed = run_deploys(analyzer, args.seconds, args.turn, args.frequency, work)
        except (RuntimeError, subprocess.SubprocessError, OSError, AttributeError) as error:
            print(f"python-demo: the demo did not run: {error}", file=sys.stderr)
            return 2
        failures, disturbed = check(analyzer, completed, args.strict_interval)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    for failure in failures:
        print(f"python-demo: {failure}", file=sys.stderr)
    if failures:
        return 1 if args.check else 0
    if disturbed and args.check and args.strict_interval:
        print("python-demo: counts ok; detection not judged (a disturbed run)")
        return 3
    print("python-demo: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
