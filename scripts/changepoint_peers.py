"""Runs ruptures (PELT, l2, jump=1) and Apache Otava (defaults) on the
series `cargo bench --bench changepoint_series` wrote, and prints F1 with a
5-point margin and time next to flameshift's."""

import json
import math
import sys
import time

import numpy as np
import ruptures
from otava.analysis import compute_change_points

MARGIN = 5


def matches(truth, found):
    used = [False] * len(truth)
    tp = 0
    for f in found:
        for i, t in enumerate(truth):
            if not used[i] and abs(t - f) <= MARGIN:
                used[i] = True
                tp += 1
                break
    return tp, len(found) - tp, len(truth) - tp


def score(series, found):
    tp = fp = fn = 0
    for s, f in zip(series, found):
        a, b, c = matches(s["truth"], f)
        tp, fp, fn = tp + a, fp + b, fn + c
    return 2 * tp / max(2 * tp + fp + fn, 1), tp, fp, fn


def noise_sd(x):
    """Median absolute successive difference / (sqrt(2) * 0.6745): the
    noise scale flameshift's PELT uses, so both get the same penalty."""
    d = np.abs(np.diff(x))
    return float(np.median(d)) / (math.sqrt(2) * 0.6745) or float(np.std(x)) or 1.0


def run_ruptures(values):
    x = np.asarray(values)
    pen = 3 * noise_sd(x) ** 2 * math.log(len(x))
    points = ruptures.Pelt(model="l2", jump=1, min_size=2).fit(x).predict(pen=pen)
    return [p for p in points if p < len(x)]


def run_otava(values):
    points, _ = compute_change_points(values)
    return [p.index for p in points]


def main(path):
    data = json.load(open(path))
    series = data["series"]
    rows = []
    for entry in data["flameshift"]:
        f1, tp, fp, fn = score(series, entry["found"])
        rows.append((f"flameshift {entry['method']}", f1, tp, fp, fn, entry["seconds"]))
    for name, run in [("ruptures Pelt(l2, jump=1)", run_ruptures), ("Apache Otava (defaults)", run_otava)]:
        started = time.perf_counter()
        found = [run(s["values"]) for s in series]
        seconds = time.perf_counter() - started
        f1, tp, fp, fn = score(series, found)
        rows.append((name, f1, tp, fp, fn, seconds))
    total = sum(len(s["truth"]) for s in series)
    print(f"{len(series)} series of {len(series[0]['values'])} points, {total} true change points, margin {MARGIN}")
    print("| method | F1 | tp | fp | fn | time |")
    print("|---|---|---|---|---|---|")
    for name, f1, tp, fp, fn, seconds in rows:
        print(f"| {name} | {f1:.3f} | {tp} | {fp} | {fn} | {seconds * 1e3:.1f} ms |")


if __name__ == "__main__":
    main(sys.argv[1])
