#!/usr/bin/env python3
"""What the Python agent costs a service, as CPU time per request.

The Python demo service (fixtures/python-demo/app.py, Flask under
gunicorn, one sync worker) is loaded by wrk (`load.lua`: GET /feed,
POST /orders, GET /users/<id> in turn) under each configuration: no
agent; flameshift's Python agent at 99 Hz, uploading to a local
`flameshift serve`; and the peer, pyroscope-io at 100 Hz (its own
in-process sampler, py-spy in a Rust thread), pushing to the same serve
(its Pyroscope ingest). The order is shuffled in every round. A run is
measured as the worker's CPU time (all its threads' `sum_exec_runtime`,
/proc/PID/task/*/schedstat) over wrk's completed requests. A
configuration's overhead in a round is its CPU per request over the
no-agent run's in that round, minus one; the table gives the mean over
rounds with a 95 % t interval, the agent's own threads (`flameshift-*`)
as % of one core, and the worker's RSS at the end.

Two designs:
- by default each run starts its service, warms it up (`--warmup`) and
  measures `--seconds`, one configuration after another, `--rounds`
  times;
- `--turn SECONDS --rounds R --epochs E` starts every configuration's
  service at once, warms each up, then loads them in shuffled turns of
  SECONDS, R turns each, and does it all E times with fresh processes.
  An epoch's turns are pooled (CPU over requests) and the interval is
  over epochs. Turns put the machine's slow drifts (a shared 2-core VM:
  the CPU per request of unchanged code moves by 10 % and more between
  minutes) on every configuration alike; epochs put a process's own
  luck (its memory layout, its hash seed: two services without an
  agent, up side by side, differ by a few percent) on one epoch rather
  than on the whole run. `--aa` adds a second service without an agent,
  compared as the others: the method's own floor.

    scripts/bench-python-agent.py [--rounds 5] [--seconds 10] [--warmup 12] [--turn S --epochs E] [--requests-only] [--thread-sampler] [--aa] [--json FILE]

Needs wrk, gunicorn, Flask, pyroscope-io and the flameshift package
(`pip install ./python`); builds nothing (uses target/release/flameshift).
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "fixtures" / "python-demo"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def t95(df):
    """The two-sided 95 % quantile of Student's t with `df` degrees of
    freedom (the table, then the Cornish–Fisher expansion: within 0.001
    from 10 on)."""
    if df in T95:
        return T95[df]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the service did not start listening")


def threads_cpu(pid):
    """(all threads' ns, the agent's threads' ns)."""
    total = agent = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
            comm = (task / "comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        total += ns
        if comm.startswith("flameshift-"):
            agent += ns
    return total, agent


def worker_of(master):
    """gunicorn's worker (the master listens before it forks it)."""
    deadline = time.monotonic() + 30
    while True:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn {master} started no worker")
        time.sleep(0.05)


def wrk(port, seconds):
    out = subprocess.run(["wrk", "-t1", "-c2", f"-d{seconds}s", "-s", str(APP / "load.lua"),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


class Service:
    """One configuration's gunicorn (one sync worker)."""

    def __init__(self, agent, analyzer):
        self.port = free_port()
        # `flameshift-0`: the agent counting and costing requests, no
        # stacks; `flameshift-thread`: its stacks read by a sampling
        # thread (the design before signal handlers, docs/python.md);
        # `none-aa`: a second service without one (A/A).
        agent, frequency, reader = {
            "flameshift-0": ("flameshift", "0", ""),
            "flameshift-thread": ("flameshift", "99", "thread"),
            "none-aa": ("none", "99", ""),
        }.get(agent, (agent, "99", ""))
        env = dict(os.environ, DEMO_AGENT=agent, FLAMESHIFT_SERVICE="pybench", FLAMESHIFT_DEPLOY="v1",
                   FLAMESHIFT_ANALYZER=analyzer, FLAMESHIFT_FREQUENCY=frequency, FLAMESHIFT_STACK_READER=reader)
        self.master = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
                                        f"127.0.0.1:{self.port}", "--chdir", str(APP), "app:app"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(self.port)
            self.worker = worker_of(self.master.pid)
        except BaseException:
            self.close()
            raise

    def measure(self, seconds):
        """wrk for `seconds`: CPU per request, the agent's share of a core."""
        cpu0, agent0 = threads_cpu(self.worker)
        start = time.monotonic()
        requests = wrk(self.port, seconds)
        cpu1, agent1 = threads_cpu(self.worker)
        elapsed = time.monotonic() - start
        rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{self.worker}/status").read_text()).group(1))
        return {"requests": requests, "cpu_per_request_us": (cpu1 - cpu0) / requests / 1e3,
                "agent_core_percent": (agent1 - agent0) / (elapsed * 1e9) * 100, "rss_mib": rss / 1024}

    def close(self):
        self.master.send_signal(signal.SIGTERM)
        self.master.wait(timeout=60)


def run(agent, analyzer, seconds, warmup):
    service = Service(agent, analyzer)
    try:
        wrk(service.port, warmup)
        return service.measure(seconds)
    finally:
        service.close()


def one_after_another(agents, analyzer, args):
    """Each round: every configuration started, warmed up and measured."""
    for _ in range(args.rounds):
        order = list(agents)
        random.shuffle(order)
        yield {agent: run(agent, analyzer, args.seconds, args.warmup) for agent in order}


def in_turns(agents, analyzer, args):
    """Every configuration up at once, loaded in shuffled turns; anew each
    epoch (fresh processes: a process's own luck, its memory layout and
    hash seed, falls on one epoch, not on the whole run). Each epoch
    gives every configuration's CPU and requests over its turns."""
    for _ in range(args.epochs):
        services = {}
        try:
            order = list(agents)
            random.shuffle(order)
            for agent in order:
                services[agent] = Service(agent, analyzer)
            for service in services.values():
                wrk(service.port, args.warmup)
            turns = {agent: [] for agent in agents}
            for _ in range(args.rounds):
                random.shuffle(order)
                for agent in order:
                    turns[agent].append(services[agent].measure(args.turn))
            yield {agent: pooled(measured) for agent, measured in turns.items()}
        finally:
            for service in services.values():
                service.close()


def pooled(measured):
    """Turns as one run: CPU over all their requests."""
    requests = sum(m["requests"] for m in measured)
    cpu_us = sum(m["cpu_per_request_us"] * m["requests"] for m in measured)
    return {"requests": requests, "cpu_per_request_us": cpu_us / requests,
            "agent_core_percent": statistics.mean(m["agent_core_percent"] for m in measured),
            "rss_mib": measured[-1]["rss_mib"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--turn", type=int,
                        help="every configuration up at once, loaded in shuffled turns of this many seconds")
    parser.add_argument("--requests-only", action="store_true",
                        help="a fourth configuration: the agent counting and costing requests, no stacks")
    parser.add_argument("--thread-sampler", action="store_true",
                        help="another configuration: flameshift with its stacks read by a sampling thread")
    parser.add_argument("--epochs", type=int, default=1,
                        help="with --turn: start every service anew this many times (the interval is over epochs)")
    parser.add_argument("--aa", action="store_true",
                        help="a second service without an agent, compared as the others (A/A: the floor of the method)")
    parser.add_argument("--json")
    args = parser.parse_args()
    flameshift = ROOT / "target" / "release" / "flameshift"
    serve = subprocess.Popen([str(flameshift), "serve", "--listen", "127.0.0.1:0", "--data",
                              f"/tmp/bench-python-agent-{os.getpid()}"], stderr=subprocess.PIPE, text=True)
    analyzer = next(m.group(1) for line in serve.stderr if (m := re.search(r"listening on (http://\S+)", line)))
    labels = {"none": "no agent", "flameshift": "flameshift 99 Hz", "pyroscope": "pyroscope-io 100 Hz"}
    if args.requests_only:
        labels["flameshift-0"] = "flameshift, requests only (no stacks)"
    if args.thread_sampler:
        labels["flameshift-thread"] = "flameshift 99 Hz, sampling thread"
    if args.aa:
        labels["none-aa"] = "no agent, a second service (A/A)"
    rounds = []
    try:
        design = in_turns if args.turn else one_after_another
        for r, results in enumerate(design(labels, analyzer, args)):
            rounds.append(results)
            print(f"{'epoch' if args.turn else 'round'} {r + 1}: " + ", ".join(
                f"{labels[a]} {results[a]['cpu_per_request_us']:.1f} µs" for a in labels), flush=True)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    print("\n| configuration | CPU per request (median) | vs no agent, mean ± 95% | agent threads, % of a core | RSS |")
    print("|---|---|---|---|---|")
    for agent, label in labels.items():
        per = [r[agent]["cpu_per_request_us"] for r in rounds]
        overheads = [r[agent]["cpu_per_request_us"] / r["none"]["cpu_per_request_us"] - 1 for r in rounds]
        mean = statistics.mean(overheads)
        half = t95(len(rounds) - 1) * statistics.stdev(overheads) / len(rounds) ** 0.5 if len(rounds) > 1 else 0
        vs = "—" if agent == "none" else f"{mean * 100:+.2f}% ± {half * 100:.2f}"
        threads = "—" if not agent.startswith("flameshift") else f"{statistics.mean(r[agent]['agent_core_percent'] for r in rounds):.2f}%"
        rss = statistics.median(r[agent]["rss_mib"] for r in rounds)
        print(f"| {label} | {statistics.median(per):.1f} µs | {vs} | {threads} | {rss:.1f} MiB |")
    if args.json:
        Path(args.json).write_text(json.dumps(rounds, indent=1))


if __name__ == "__main__":
    main()
