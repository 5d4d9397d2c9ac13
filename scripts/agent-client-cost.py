#!/usr/bin/env python3
"""What the agent's HTTP client costs a service: binary size, RSS, threads
and CPU of collector/examples/agent_service.rs built twice (BEFORE and
AFTER, e.g. two commits), each shipping to a running analyzer (URL), in
alternating rounds; medians printed as a Markdown table.

usage: agent-client-cost.py URL BEFORE_BIN AFTER_BIN [ROUNDS] [SECONDS] [MODE]
MODE is idle (default: the service sleeps) or busy (it burns one core).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

url, before, after = sys.argv[1:4]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 30
mode = sys.argv[6] if len(sys.argv) > 6 else "idle"
ticks = os.sysconf("SC_CLK_TCK")


def stripped_size(path):
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "bin")
        shutil.copy(path, copy)
        subprocess.run(["strip", copy], check=True)
        return os.path.getsize(copy)


def measure(binary):
    env = dict(os.environ, FLAMESHIFT_ANALYZER=url, FLAMESHIFT_UPLOAD_INTERVAL="2")
    child = subprocess.Popen([binary, str(seconds), mode], env=env, stderr=subprocess.DEVNULL)
    time.sleep(seconds - 2)
    status = dict(
        line.split(":", 1) for line in open(f"/proc/{child.pid}/status").read().splitlines() if ":" in line
    )
    stat = open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    child.wait()
    return {
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "anon_mib": int(status["RssAnon"].split()[0]) / 1024,
        "file_mib": int(status["RssFile"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "cpu_s": cpu,
    }


runs = {"before": [], "after": []}
for _ in range(rounds):
    for name, binary in (("before", before), ("after", after)):
        runs[name].append(measure(binary))

print(f"{mode}, {seconds - 2} s measured, {rounds} alternating rounds, medians:\n")
print("| | binary | stripped | RSS (anonymous + file) | threads | CPU over the run |")
print("|---|---|---|---|---|---|")
for name, binary in (("before", before), ("after", after)):
    m = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
    print(
        f"| {name} | {os.path.getsize(binary) / 2**20:.2f} MiB | {stripped_size(binary) / 2**20:.2f} MiB "
        f"| {m['rss_mib']:.1f} MiB ({m['anon_mib']:.1f} + {m['file_mib']:.1f}) | {m['threads']:.0f} | {m['cpu_s']:.2f} s "
        f"({100 * m['cpu_s'] / (seconds - 2):.2f} % of a core) |"
    )
