#!/usr/bin/env python3
"""What the in-process agent costs a service, as CPU time per request.

`flameshift demo-service` (axum, GET /feed, ~0.5 ms of CPU a request) is
loaded by wrk on loopback under each configuration in turn: no agent;
the agent at 0 Hz (request counting and costing only), 99 Hz and 999 Hz,
each without and with uploads to a local `flameshift serve`; and the
peer, pprof-rs (fixtures/peer-pprof-rs: the same work, the same axum),
with no profiler, at 99 Hz and at 999 Hz. The order is shuffled in every
round. Each run is warmed up for 11 s (past the agent's first 10 s
interval, whose profile reads the binary's debug info once), then
measured for 10 s (one steady-state interval). For each run it reads
the service's CPU time (sum of its threads'
`sum_exec_runtime` from /proc/PID/task/*/schedstat, in ns) and wrk's
completed requests over the measured seconds, so CPU per request =
CPU / requests. A configuration's overhead in a round is its CPU per
request over its own baseline's in that round (no agent for flameshift,
no profiler for pprof-rs), minus one; the table gives the mean over
rounds with a 95 % t interval. Also: the agent's own threads
(`flameshift-*`, the HTTP client's runtime) as % of one core during the
measured seconds, and the service's RSS at the end.

    scripts/bench-agent-cpu.py [--rounds 6] [--seconds 10] [--warmup 11] [--before BIN]
                               [--only LABEL,...] [--json FILE]

`--before BIN` adds the agent at 99 and 999 Hz from another build of
flameshift (e.g. the commit before a change) to the same rounds.
Needs wrk; builds the release binary and the peer (cargo).
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 7498
ANALYZER_PORT = 7499
AGENT_THREADS = ("flameshift-", "reqwest-interna")

# Two-sided 95 % t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
       8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093}


def t95(df):
    return T95.get(df) or T95[max(k for k in T95 if k <= df)] if df >= 1 else float("nan")


def build(peer_target):
    subprocess.run(["cargo", "build", "--release", "--quiet", "--locked", "--bin", "flameshift"],
                   cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--locked", "--manifest-path",
                    "fixtures/peer-pprof-rs/Cargo.toml"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(peer_target)})


def configurations(fs, peer, before):
    listen = f"127.0.0.1:{PORT}"
    analyzer = f"http://127.0.0.1:{ANALYZER_PORT}"
    service = [fs, "demo-service", "--listen", listen, "--deploy", "v1"]
    configs = [("no agent", "no agent", service + ["--no-agent"], {})]
    for hz in (0, 99, 999):
        env = {"FLAMESHIFT_FREQUENCY": str(hz)}
        configs.append((f"agent {hz} Hz", "no agent", service, env))
        configs.append((f"agent {hz} Hz, uploading", "no agent", service + ["--analyzer", analyzer], env))
    if before:
        old = [before, "demo-service", "--listen", listen, "--deploy", "v1"]
        for hz in (99, 999):
            configs.append((f"before: agent {hz} Hz", "no agent", old, {"FLAMESHIFT_FREQUENCY": str(hz)}))
    configs.append(("pprof-rs: none", "pprof-rs: none", [peer, listen, "--no-profiler"], {}))
    for hz in (99, 999):
        configs.append((f"pprof-rs {hz} Hz", "pprof-rs: none", [peer, listen, "--frequency", str(hz)], {}))
    return configs


def threads_cpu(pid):
    """(all threads' ns, agent threads' ns) from schedstat."""
    total = agent = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
            comm = (task / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        total += ns
        if comm.startswith(AGENT_THREADS):
            agent += ns
    return total, agent


def rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def wrk(seconds):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", f"http://127.0.0.1:{PORT}/feed"],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def wait_listening(timeout=10.0):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", PORT)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the service did not start listening")


def run(command, env, seconds, warmup):
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening()
        # Warm up past the agent's first interval (10 s), whose profile
        # reads the binary's debug info once: the measured seconds hold
        # a later, steady-state interval.
        wrk(warmup)
        cpu0, agent0 = threads_cpu(proc.pid)
        start = time.monotonic()
        requests = wrk(seconds)
        cpu1, agent1 = threads_cpu(proc.pid)
        elapsed = time.monotonic() - start
        rss = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "requests": requests,
        "cpu_ns": cpu1 - cpu0,
        "us_per_request": (cpu1 - cpu0) / requests / 1000,
        "agent_core_pct": 100 * (agent1 - agent0) / (elapsed * 1e9),
        "rss_mib": rss / 1024,
    }


def summarize(configs, rounds):
    rows = []
    for label, baseline, _, _ in configs:
        overheads, us, agent, rss = [], [], [], []
        for r in rounds:
            if label in r and baseline in r:
                overheads.append(r[label]["us_per_request"] / r[baseline]["us_per_request"] - 1)
            if label in r:
                us.append(r[label]["us_per_request"])
                agent.append(r[label]["agent_core_pct"])
                rss.append(r[label]["rss_mib"])
        n = len(overheads)
        mean = statistics.fmean(overheads) if n else float("nan")
        half = t95(n - 1) * statistics.stdev(overheads) / n ** 0.5 if n > 1 else float("nan")
        rows.append({
            "label": label, "baseline": baseline, "rounds": n,
            "us_per_request_median": statistics.median(us) if us else float("nan"),
            "overhead_mean": mean, "overhead_ci95": half,
            "agent_core_pct_median": statistics.median(agent) if agent else float("nan"),
            "rss_mib_median": statistics.median(rss) if rss else float("nan"),
        })
    return rows


def print_table(rows, seconds, warmup):
    print(f"\n| configuration | CPU per request (median) | vs its baseline, mean ± 95% | "
          f"agent threads, % of a core | RSS | rounds |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        same = row["label"] == row["baseline"]
        overhead = "—" if same else f"{row['overhead_mean'] * 100:+.2f}% ± {row['overhead_ci95'] * 100:.2f}"
        agent = "—" if not row["label"].startswith(("agent", "before")) else f"{row['agent_core_pct_median']:.2f}%"
        print(f"| {row['label']} | {row['us_per_request_median']:.1f} µs | {overhead} | {agent} | "
              f"{row['rss_mib_median']:.1f} MiB | {row['rounds']} |")
    print(f"\n(wrk -t1 -c8, {seconds} s measured per run after a {warmup} s warm-up)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=11)
    parser.add_argument("--before", help="another flameshift binary to compare the agent with")
    parser.add_argument("--only", help="comma-separated labels (baselines are added)")
    parser.add_argument("--json", default=str(ROOT / "bench-data" / "agent-cpu.json"))
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    peer_target = Path(os.environ.get("PEER_TARGET", "/tmp/flameshift-peer-target"))
    if not args.no_build:
        build(peer_target)
    fs = str(ROOT / "target" / "release" / "flameshift")
    peer = str(peer_target / "release" / "peer-pprof-rs")
    configs = configurations(fs, peer, args.before)
    if args.only:
        wanted = set(args.only.split(","))
        keep = wanted | {c[1] for c in configs if c[0] in wanted}
        configs = [c for c in configs if c[0] in keep]
    data = ROOT / "bench-data" / "agent-cpu"
    data.mkdir(parents=True, exist_ok=True)
    analyzer = subprocess.Popen([fs, "serve", "--listen", f"127.0.0.1:{ANALYZER_PORT}", "--data",
                                 str(data / "store")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rounds = []
    try:
        time.sleep(1)
        for i in range(args.rounds):
            order = configs[:]
            random.Random(i).shuffle(order)
            results = {}
            for label, _, command, env in order:
                results[label] = run(command, env, args.seconds, args.warmup)
                print(f"round {i + 1}: {label}: {results[label]['us_per_request']:.2f} µs/request, "
                      f"agent {results[label]['agent_core_pct']:.2f}% core, {results[label]['rss_mib']:.1f} MiB",
                      file=sys.stderr, flush=True)
            rounds.append(results)
    finally:
        analyzer.terminate()
        analyzer.wait(timeout=30)
    rows = summarize(configs, rounds)
    print_table(rows, args.seconds, args.warmup)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rows": rows, "rounds": rounds, "seconds": args.seconds}, indent=1))


if __name__ == "__main__":
    main()
