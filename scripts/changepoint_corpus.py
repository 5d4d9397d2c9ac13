"""Scores change-point methods on the evaluation corpus in
fixtures/changepoints/ (README.md there: what each series is, where it
comes from and why its change points are the truth), all in one run.

Three categories: `real` (R's classic data sets), `bench` (benchmark
histories of a program built at successive commits, timed and counted
with callgrind), `sim` (the fleet simulator's cost series). Every series
is scored with F1 (a found point matches an unmatched true one within 5
rows; as in the TCPD benchmark of van den Burg and Williams, the start of
the series counts as a change point on both sides, so that a series with
no change scores 1 when nothing is found) and with segmentation cover
(Arbelaez et al.). A category's score is the mean over its series; the
overall score is the mean of the three categories.

Methods: the zero baseline (no change points); flameshift's methods,
run through the CLI (`flameshift changepoints FILE --column value
--json`); and with `--peers`, ruptures PELT and BinSeg (l2 cost, BIC
penalty 2·σ²·ln n, σ from successive differences) and Apache Otava's
defaults, given the values present (the rows of missing ones skipped),
their points mapped back to rows.

    python3 scripts/changepoint_corpus.py --flameshift target/release/flameshift
        prints the table: flameshift's methods, the zero baseline and the
        peers' recorded scores (fixtures/changepoints/peer-scores.json)
    ... --peers
        also runs the peers (ruptures==1.1.10, apache-otava==0.8.0) and
        records their scores
    ... --check
        exits 1 unless flameshift's default method scores, overall, at
        least 0.1 F1 above the zero baseline and above every recorded
        peer, and in no category below the zero baseline
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "fixtures", "changepoints")
CATEGORIES = ["real", "bench", "sim"]
MARGIN = 5
PEER_SCORES = os.path.join(CORPUS, "peer-scores.json")


def load():
    """Every series: category, name, file, rows (of the values present),
    values, row count and true change points (rows)."""
    series = []
    for category in CATEGORIES:
        with open(os.path.join(CORPUS, category, "truth.json")) as f:
            truth = json.load(f)
        for name in sorted(truth):
            path = os.path.join(CORPUS, category, f"{name}.csv")
            rows, values = [], []
            with open(path) as f:
                table = list(csv.DictReader(f))
            for row, record in enumerate(table):
                if record["value"].strip():
                    rows.append(row)
                    values.append(float(record["value"]))
            series.append({"category": category, "name": name, "path": path, "rows": rows, "values": values,
                           "n": len(table), "truth": truth[name]["truth"]})
    return series


def f1(truth, found, n):
    truth = sorted(set([0] + list(truth)))
    found = sorted(set([0] + [f for f in found if 0 <= f < n]))
    used = [False] * len(truth)
    tp = 0
    for f in found:
        for i, t in enumerate(truth):
            if not used[i] and abs(t - f) <= MARGIN:
                used[i] = True
                tp += 1
                break
    precision, recall = tp / len(found), tp / len(truth)
    return 2 * precision * recall / (precision + recall) if tp else 0.0


def segments(points, n):
    bounds = [0] + sorted(set(p for p in points if 0 < p < n)) + [n]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def cover(truth, found, n):
    predicted = segments(found, n)
    total = 0.0
    for a, b in segments(truth, n):
        best = 0.0
        for c, d in predicted:
            inter = max(0, min(b, d) - max(a, c))
            union = max(b, d) - min(a, c)
            best = max(best, inter / union)
        total += (b - a) * best
    return total / n


def run_flameshift(binary, method):
    def run(s):
        command = [binary, "changepoints", s["path"], "--column", "value", "--json"]
        name, *options = method.split(":")
        if name != "default":
            command += ["--method", name]
        command += options
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {out.returncode}: {out.stderr}")
        return [p["index"] for p in json.loads(out.stdout)[0]["change_points"]]
    return run


def noise_sd(x):
    import numpy as np

    d = np.abs(np.diff(x))
    return float(np.median(d)) / (math.sqrt(2) * 0.6745) or float(np.std(x)) or 1.0


def run_ruptures(search):
    def run(s):
        import numpy as np
        import ruptures

        x = np.asarray(s["values"], dtype=float)
        pen = 2 * noise_sd(x) ** 2 * math.log(len(x))
        algo = {"pelt": ruptures.Pelt, "binseg": ruptures.Binseg}[search](model="l2", jump=1, min_size=2)
        points = algo.fit(x).predict(pen=pen)
        return [s["rows"][p] for p in points if p < len(x)]
    return run


def run_otava(s):
    from otava.analysis import compute_change_points

    points, _ = compute_change_points(s["values"])
    return [s["rows"][p.index] for p in points]


def score(series, run):
    started = time.perf_counter()
    per_category = {c: {"f1": [], "cover": []} for c in CATEGORIES}
    found_all = {}
    for s in series:
        found = run(s)
        found_all[f"{s['category']}/{s['name']}"] = found
        per_category[s["category"]]["f1"].append(f1(s["truth"], found, s["n"]))
        per_category[s["category"]]["cover"].append(cover(s["truth"], found, s["n"]))
    seconds = time.perf_counter() - started
    result = {c: {k: sum(v) / len(v) for k, v in per_category[c].items()} for c in CATEGORIES}
    result["overall"] = {k: sum(result[c][k] for c in CATEGORIES) / len(CATEGORIES) for k in ("f1", "cover")}
    result["seconds"] = seconds
    return result, found_all


def table(results):
    lines = ["| method | " + " | ".join(f"{c} F1 / cover" for c in CATEGORIES + ["overall"]) + " | time |",
             "|---|" + "---|" * (len(CATEGORIES) + 2)]
    for name, r in results.items():
        cells = [f"{r[c]['f1']:.3f} / {r[c]['cover']:.3f}" for c in CATEGORIES + ["overall"]]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seconds'] * 1e3:.0f} ms |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flameshift", default=os.path.join(ROOT, "target", "release", "flameshift"))
    parser.add_argument("--methods", default="default,e-divisive,pelt",
                        help="flameshift's methods to score, each with its options after colons "
                             "(default:--penalty=6)")
    parser.add_argument("--peers", action="store_true", help="run ruptures and Otava, and record their scores")
    parser.add_argument("--check", action="store_true", help="fail unless the default beats the baseline and peers")
    parser.add_argument("--verbose", action="store_true", help="print each series' change points")
    args = parser.parse_args()
    series = load()
    counts = {c: sum(1 for s in series if s["category"] == c) for c in CATEGORIES}
    truths = {c: sum(len(s["truth"]) for s in series if s["category"] == c) for c in CATEGORIES}
    print(f"corpus: {len(series)} series ("
          + ", ".join(f"{c} {counts[c]} with {truths[c]} change points" for c in CATEGORIES) + f"), margin {MARGIN}")
    results, found = {}, {}
    results["zero baseline"], found["zero baseline"] = score(series, lambda s: [])
    for method in args.methods.split(","):
        name = f"flameshift {method}"
        results[name], found[name] = score(series, run_flameshift(args.flameshift, method))
    if args.peers:
        peers = {}
        for name, run in [("ruptures PELT (l2, BIC)", run_ruptures("pelt")),
                          ("ruptures BinSeg (l2, BIC)", run_ruptures("binseg")),
                          ("Apache Otava (defaults)", run_otava)]:
            peers[name], found[name] = score(series, run)
        with open(PEER_SCORES, "w") as f:
            json.dump(peers, f, indent=1, sort_keys=True)
            f.write("\n")
    else:
        with open(PEER_SCORES) as f:
            peers = json.load(f)
        peers = {f"{name} (recorded)": r for name, r in peers.items()}
    results.update(peers)
    print(table(results))
    if args.verbose:
        for key in found["zero baseline"]:
            category, name = key.split("/")
            truth = next(s["truth"] for s in series if s["category"] == category and s["name"] == name)
            print(f"{key}: truth {truth}; " + "; ".join(f"{m}: {found[m][key]}" for m in found if m != "zero baseline"))
    if args.check:
        ours, zero = results["flameshift default"], results["zero baseline"]
        problems = []
        if ours["overall"]["f1"] < zero["overall"]["f1"] + 0.1:
            problems.append(f"overall F1 {ours['overall']['f1']:.3f} is not 0.1 above the zero baseline's {zero['overall']['f1']:.3f}")
        for name, r in peers.items():
            if ours["overall"]["f1"] <= r["overall"]["f1"]:
                problems.append(f"overall F1 {ours['overall']['f1']:.3f} is not above {name}'s {r['overall']['f1']:.3f}")
        for c in CATEGORIES:
            if ours[c]["f1"] < zero[c]["f1"]:
                problems.append(f"{c}: F1 {ours[c]['f1']:.3f} is below the zero baseline's {zero[c]['f1']:.3f}")
        if problems:
            sys.exit("flameshift's default change-point method: " + "; ".join(problems))
        print("check passed: the default method beats the zero baseline by 0.1 and every recorded peer, overall, "
              "and the baseline in every category")


if __name__ == "__main__":
    main()
