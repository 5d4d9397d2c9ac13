#!/usr/bin/env python3
"""What a sample costs the thread it is taken on, where each thread reads
its own stack in the agent's SIGPROF handler (CPython 3.9-3.13): the
calling thread, DEPTH frames deep, sends itself SIGPROF with
`signal.pthread_kill` CALLS times a run (a pause between runs lets the
agent drain its buffer: every signal is a sample), its CPU time per
signal, the median of 15 runs, with the
agent running (each signal a sample: delivery, the handler's read of the
Python stack, its write into the buffer, the return) against SIGPROF
ignored (the `tgkill` system call alone: an ignored signal is never
delivered). Then the same thread burns CPU for SECONDS at 99 Hz: how
many samples a second of CPU the timers give, and the agent's own
threads' CPU.

    python3 scripts/bench-python-handler.py [DEPTH=30] [CALLS=800] [SECONDS=5]

Needs the flameshift package (`pip install ./python`); uploads go to a
closed port (nothing listens). A timer's sample also reads the thread's
CPU clock and re-arms its timer (two more system calls, ~1 µs here),
which a `pthread_kill` does not.
"""

import os
import signal
import statistics
import sys
import threading
import time

import flameshift


def deep(n, action):
    return deep(n - 1, action) if n else action()


def per_signal_ns(calls):
    tid = threading.get_ident()
    started = time.thread_time_ns()
    for _ in range(calls):
        signal.pthread_kill(tid, signal.SIGPROF)
    return (time.thread_time_ns() - started) / calls


def agent_threads_ns():
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("flameshift"):
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def burn(seconds):
    until = time.thread_time() + seconds
    x = 0
    while time.thread_time() < until:
        for i in range(1000):
            x += i * i
    return x


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 800
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    signal.signal(signal.SIGPROF, signal.SIG_IGN)
    ignored = [deep(depth, lambda: per_signal_ns(calls)) for _ in range(15)]
    # 1 Hz: the timers stay out of the way of the signals sent by hand.
    flameshift.start(service="bench", deploy="v1", analyzer="http://127.0.0.1:9", frequency=1)
    assert flameshift.stats()["stack_reader"] == "flameshift", flameshift.stats()
    sampled = []
    for _ in range(15):
        sampled.append(deep(depth, lambda: per_signal_ns(calls)))
        time.sleep(0.25)
    stats = flameshift.stats()
    reads = stats["stack_reads"]
    flameshift.stop()
    print(f"CPython {sys.version.split()[0]}, {depth} frames: a signal {statistics.median(sampled) / 1e3:.2f} µs "
          f"sampled against {statistics.median(ignored) / 1e3:.2f} µs ignored (medians of 15 runs of {calls}); "
          f"{reads['running']} samples taken, {reads['torn']} torn, "
          f"{stats['dropped_samples']} dropped")
    flameshift.start(service="bench", deploy="v1", analyzer="http://127.0.0.1:9", frequency=99)
    time.sleep(0.3)
    reads0, agent0, wall0 = flameshift.stats()["stack_reads"]["ticks"], agent_threads_ns(), time.monotonic()
    deep(depth, lambda: burn(seconds))
    wall = time.monotonic() - wall0
    reads1, agent1 = flameshift.stats()["stack_reads"]["ticks"], agent_threads_ns()
    flameshift.stop()
    print(f"99 Hz: {(reads1 - reads0) / seconds:.1f} samples a CPU-second; the agent's threads "
          f"{(agent1 - agent0) / wall / 1e7:.3f}% of a core")


if __name__ == "__main__":
    main()
