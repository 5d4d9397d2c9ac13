#!/usr/bin/env python3
"""How close the Python agent's attribution comes to the truth: the
`attribution` scenario of python/tests/scenarios.py (functions `a` and
`b`, whose CPU stands 2:1, in two threads at 999 Hz) against a real
`flameshift serve`, RUNS times; each run's a/b ratio of self CPU and its
count of samples.

    python3 scripts/bench-python-attribution.py [RUNS=4] [SECONDS=20]

Needs the flameshift package (`pip install ./python`) and a built
`flameshift` (FLAMESHIFT_BIN, else target/debug/flameshift).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))

from test_agent import Serve, function_shares, scenario  # noqa: E402


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    seconds = sys.argv[2] if len(sys.argv) > 2 else "20"
    ratios = []
    for _ in range(runs):
        serve = Serve()
        try:
            scenario("attribution", serve.url, seconds)
            values, listing = function_shares(serve, "ratio")
        finally:
            serve.close()
        ratio = values["a"] / values["b"]
        ratios.append(ratio)
        print(f"a/b = {ratio:.3f} ({(ratio / 2 - 1) * 100:+.1f}%), {listing['samples']} samples", flush=True)
    worst = max(abs(r / 2 - 1) for r in ratios) * 100
    print(f"{runs} runs of {seconds} s: the farthest from 2:1 is {worst:.1f}% off")


if __name__ == "__main__":
    main()
