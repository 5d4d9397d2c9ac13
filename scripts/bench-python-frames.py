#!/usr/bin/env python3
"""What `flameshift record` costs a CPython program, with and without
Python frames, against `perf record` at the same rate.

The program is `fixtures/python-frames/work.py --rounds N` (json, re,
hashlib, sorted with a key): a fixed amount of work, whose own CPU
seconds (`time.process_time()`, user + system, which includes what the
kernel spends sampling it) it prints at exit. Configurations, in
shuffled order, ROUNDS times each:

- `none`: the program alone;
- `perf F`: `perf record -F F --call-graph dwarf` (what `perf` users run
  for stacks of code without frame pointers; libpython has none);
- `flameshift F`: `flameshift record -F F` (Python frames read);
- `flameshift F --python off`: native stacks only.

Reported: the program's CPU per run (mean, 95% interval), its increase
over `none`, and the profiler's own CPU (its process and children less
the program's).

    python3 scripts/bench-python-frames.py [--rounds 5] [--work 60] [--rates 99,999]
"""

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "fixtures" / "python-frames" / "work.py"


def run(cmd, cwd):
    """(the program's CPU seconds, the whole command's CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    line = next(l for l in done.stdout.splitlines() if l.startswith("cpu "))
    program = float(line.split()[1])
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return program, total


def interval(values):
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, 1.96 * statistics.stdev(values) / len(values) ** 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flameshift", default=str(ROOT / "target" / "release" / "flameshift"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=int, default=60, help="rounds of the workload per run")
    parser.add_argument("--rates", default="99,999")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    flameshift = str(Path(args.flameshift).resolve())
    program = [args.python, str(WORKLOAD), "--rounds", str(args.work)]
    with tempfile.TemporaryDirectory() as tmp:
        configs = {"none": program}
        for rate in args.rates.split(","):
            configs[f"perf {rate}"] = ["perf", "record", "-q", "-F", rate, "--call-graph", "dwarf",
                                       "-o", f"{tmp}/perf.data", "--"] + program
            configs[f"flameshift {rate}"] = [flameshift, "record", "-F", rate, "-o", f"{tmp}/fs.pb.gz", "--"] + program
            configs[f"flameshift {rate} --python off"] = [flameshift, "record", "-F", rate, "--python", "off",
                                                         "-o", f"{tmp}/fs.pb.gz", "--"] + program
        order = [name for name in configs for _ in range(args.rounds)]
        random.shuffle(order)
        results = {name: ([], []) for name in configs}
        for i, name in enumerate(order, 1):
            program_cpu, total = run(configs[name], tmp)
            results[name][0].append(program_cpu)
            results[name][1].append(total - program_cpu)
            print(f"  [{i}/{len(order)}] {name}: program {program_cpu:.3f} s, profiler {total - program_cpu:.3f} s",
                  file=sys.stderr)
    base, _ = interval(results["none"][0])
    print(f"{args.python} {WORKLOAD.name} --rounds {args.work}, {args.rounds} runs each (shuffled)")
    print(f"{'configuration':<32} {'program CPU (s)':>18} {'vs none':>9} {'profiler CPU (s)':>17}")
    for name, (cpu, own) in results.items():
        mean, half = interval(cpu)
        own_mean, own_half = interval(own)
        profiler = "" if name == "none" else f"{own_mean:8.3f} ± {own_half:.3f}"
        print(f"{name:<32} {mean:9.3f} ± {half:.3f} {100 * (mean / base - 1):+8.2f}% {profiler:>17}")


if __name__ == "__main__":
    main()
