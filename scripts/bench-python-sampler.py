#!/usr/bin/env python3
"""What the Python agent's sampling thread costs per tick: one Python
thread burns CPU at the bottom of a stack of DEPTH frames while the agent
samples at FREQUENCY; the sampling thread's CPU (its `sum_exec_runtime`,
/proc/self/task/*/schedstat) over the ticks.

    FLAMESHIFT_STACK_READER=thread python3 scripts/bench-python-sampler.py [FREQUENCY=999] [DEPTH=30] [SECONDS=5]
    FLAMESHIFT_STACK_READER=py-spy python3 scripts/bench-python-sampler.py ...   # the peer reader

On CPython 3.9-3.13 the threads read their own stacks in a signal
handler unless FLAMESHIFT_STACK_READER asks for a sampling thread (there
is then no sampling thread to measure: scripts/bench-python-handler.py
measures the handler).

Needs the flameshift package (`pip install ./python`); uploads go to a
closed port (nothing listens: the cost measured is the sampler's).
"""

import os
import sys
import time

import flameshift


def thread_cpu_ns(prefix):
    """CPU of this process's threads whose name starts with `prefix`."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith(prefix):
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread exited
    return total


def deep(n, until):
    if n:
        return deep(n - 1, until)
    x = 0
    while time.perf_counter() < until:
        for i in range(1000):
            x += i * i
    return x


def main():
    frequency = int(sys.argv[1]) if len(sys.argv) > 1 else 999
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    flameshift.start(service="bench", deploy="v1", analyzer="http://127.0.0.1:9", frequency=frequency)
    time.sleep(0.2)
    sampler, agent, started = thread_cpu_ns("flameshift-pyth"), thread_cpu_ns("flameshift"), time.perf_counter()
    deep(depth, started + seconds)
    elapsed = time.perf_counter() - started
    sampler = thread_cpu_ns("flameshift-pyth") - sampler
    agent = thread_cpu_ns("flameshift") - agent
    stats = flameshift.stats()
    flameshift.stop()
    ticks = stats["stack_reads"]["ticks"] if stats and stats["stack_reads"] else 0
    print(f"CPython {sys.version.split()[0]}, {depth} frames, {frequency} Hz, reader {stats['stack_reader']}: "
          f"sampling thread {sampler / elapsed / 1e7:.2f}% of a core ({sampler / max(ticks, 1) / 1e3:.1f} µs a tick "
          f"over {ticks} ticks); all agent threads {agent / elapsed / 1e7:.2f}%")


if __name__ == "__main__":
    main()
