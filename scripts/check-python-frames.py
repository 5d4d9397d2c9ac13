#!/usr/bin/env python3
"""`flameshift record` and `attach` on CPython, against `py-spy record`.

For each CPython 3.9-3.13 found (pyenv's, else `python3`), on the
standard-library workload `fixtures/python-frames/work.py` (json's C
accelerator, re, hashlib, `sorted` with a key function):

- `record -- PY work.py S` and `py-spy record -- PY work.py S`, then
  `attach --pid` and `py-spy record --pid` to the workload running: the
  inclusive share of each Python function of the workload and of the
  standard library modules it drives agree within 5 points;
-   in flameshift's stacks, each C-accelerated call sits under the Python
  function that called it (its nearest Python ancestor): at least 90% of
  their samples together, 80% of each one's (`encoder_listencode_obj` under
  `JSONEncoder.iterencode`, `scanner_call` under `JSONDecoder.raw_decode`,
  `_sre_SRE_Pattern_findall` under `findall`, `_hashlib_openssl_sha256`
  under `digest`).

    python3 scripts/check-python-frames.py [--flameshift BIN] [--seconds S] [--json OUT] [--versions 3.9,3.10]

Exits 1 when a check fails. py-spy comes from PyPI
(scripts/requirements-python.txt).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "fixtures" / "python-frames" / "work.py"

# The functions compared: the workload's and the standard library's it
# drives (named as `qualname (file)`, py-spy's line numbers dropped).
FUNCTIONS = [
    "encode_json (work.py)",
    "decode_json (work.py)",
    "find_addresses (work.py)",
    "digest (work.py)",
    "sort_by_key (work.py)",
    "sort_by_key.<locals>.<lambda> (work.py)",
    "JSONEncoder.iterencode (json/encoder.py)",
    "JSONDecoder.raw_decode (json/decoder.py)",
    "findall (re/__init__.py)",
]
# A C function of an extension, and the Python function that calls it.
ACCELERATED = {
    "encoder_listencode_obj": "JSONEncoder.iterencode (json/encoder.py)",
    "scanner_call": "JSONDecoder.raw_decode (json/decoder.py)",
    "_sre_SRE_Pattern_findall": "findall (re/__init__.py)",
    "_hashlib_openssl_sha256": "digest (work.py)",
}
MAX_POINTS = 5.0
# Under its caller: at least 90% of the four C functions' samples
# together (a few hundred a run), and 80% of each one's (some 40 samples
# each: one binomial standard deviation is 3–4 points there).
MIN_UNDER = 0.90
MIN_UNDER_EACH = 0.80


def named(function, version):
    """`function` as CPython `version` names it: before 3.11 a code object
    has no qualified name (both tools show `co_name`) and `re` is a module,
    not a package."""
    if version >= (3, 11):
        return function
    name, file = function.rsplit(" (", 1)
    return f"{name.rsplit('.', 1)[-1]} ({file.replace('re/__init__.py', 're.py')}"


PY_FRAME = re.compile(r"^(?P<name>.+) \((?P<file>[^()]*?\.py|<[^()]*>)(?::\d+)?\)$")


def interpreters():
    """((major, minor), path) of CPython 3.9-3.13: pyenv's, else python3."""
    found = {}
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        for minor in (9, 10, 11, 12, 13):
            versions = sorted(v for v in os.listdir(f"{root}/versions") if v.startswith(f"3.{minor}."))
            if versions:
                found[(3, minor)] = f"{root}/versions/{versions[-1]}/bin/python3.{minor}"
    except (OSError, subprocess.CalledProcessError):
        pass
    if not found:
        version = subprocess.run(
            ["python3", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        found[tuple(map(int, version))] = shutil.which("python3")
    return sorted(found.items())


def read_folded(path):
    """[(frames, weight)] of a folded file (flameshift's or py-spy's raw)."""
    stacks = []
    for line in Path(path).read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(weight)))
    return stacks


def function_of(frame):
    """`qualname (file)` of a Python frame, None for a native one."""
    m = PY_FRAME.match(frame)
    return f"{m['name']} ({m['file']})" if m else None


def shares(stacks, functions):
    """Inclusive share (%) of each of `functions` among the samples that
    ran the workload."""
    total = 0
    inclusive = Counter()
    for frames, weight in stacks:
        seen = {function_of(f) for f in frames} - {None}
        if not any(f.endswith("(work.py)") for f in seen):
            continue
        total += weight
        for f in seen:
            inclusive[f] += weight
    return {f: 100.0 * inclusive[f] / total for f in functions} if total else {}, total


def under_callers(stacks, accelerated):
    """Per accelerated C function: samples, and the share whose nearest
    Python ancestor is its caller."""
    result = {}
    for native, caller in accelerated.items():
        seen = right = 0
        for frames, _ in stacks:
            at = next((i for i, f in enumerate(frames) if f == native), None)
            if at is None:
                continue
            seen += 1
            nearest = next((function_of(f) for f in reversed(frames[:at]) if function_of(f)), None)
            right += nearest == caller
        result[native] = (seen, right / seen if seen else 0.0)
    return result


def run_quiet(cmd):
    # From the workload's directory: both tools name its file `work.py`.
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=WORKLOAD.parent)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def start_workload(python):
    proc = subprocess.Popen([python, str(WORKLOAD), "0"], stdout=subprocess.PIPE, text=True, cwd=WORKLOAD.parent)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def compare(label, version, ours, theirs, failures):
    functions = [named(f, version) for f in FUNCTIONS]
    accelerated = {native: named(caller, version) for native, caller in ACCELERATED.items()}
    our_shares, our_total = shares(read_folded(ours), functions)
    their_shares, their_total = shares(read_folded(theirs), functions)
    if not our_shares or not their_shares:
        failures.append(f"{label}: no samples of the workload (flameshift {our_total}, py-spy {their_total})")
        return {}
    print(f"  {'function':<45} {'flameshift':>10} {'py-spy':>8} {'points':>7}")
    rows = {}
    for f in functions:
        a, b = our_shares[f], their_shares[f]
        ok = abs(a - b) <= MAX_POINTS
        print(f"  {f:<45} {a:9.1f}% {b:7.1f}% {a - b:+7.1f}{'' if ok else '  <-- over 5 points'}")
        if not ok:
            failures.append(f"{label}: {f} {a:.1f}% vs py-spy {b:.1f}%")
        rows[f] = {"flameshift": round(a, 2), "py_spy": round(b, 2)}
    under = under_callers(read_folded(ours), accelerated)
    for native, (seen, right) in under.items():
        ok = seen >= 5 and right >= MIN_UNDER_EACH
        print(f"  {native} under {accelerated[native]}: {right:.0%} of {seen} samples{'' if ok else '  <-- FAIL'}")
        if not ok:
            failures.append(f"{label}: {native} under its caller in {right:.0%} of {seen} samples")
        rows[native] = {"samples": seen, "under_caller": round(right, 4)}
    seen = sum(n for n, _ in under.values())
    right = sum(n * r for n, r in under.values())
    pooled = right / seen if seen else 0.0
    ok = pooled >= MIN_UNDER
    print(f"  all four under their callers: {pooled:.1%} of {seen} samples{'' if ok else '  <-- FAIL'}")
    if not ok:
        failures.append(f"{label}: the C calls under their callers in {pooled:.1%} of {seen} samples")
    rows["pooled"] = {"samples": seen, "under_caller": round(pooled, 4)}
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flameshift", default=str(ROOT / "target" / "debug" / "flameshift"))
    parser.add_argument("--frequency", default="499", help="both tools' rate (Hz; 499: enough samples that 5 points is past chance)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", help="write the shares here")
    parser.add_argument("--versions", help="only these CPython versions, e.g. 3.9,3.10 (default: every one found)")
    args = parser.parse_args()
    if not shutil.which("py-spy"):
        sys.exit("py-spy is not installed: python3 -m pip install -r scripts/requirements-python.txt")
    failures = []
    report = {}
    seconds = str(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for (major, minor), python in interpreters():
            version = f"{major}.{minor}"
            if args.versions and version not in args.versions.split(","):
                continue
            ours, theirs = f"{tmp}/fs.folded", f"{tmp}/spy.txt"
            print(f"== CPython {version} ({python}): record")
            done = run_quiet([str(Path(args.flameshift).resolve()), "record", "-F", args.frequency, "--python", "on", "-o", ours, "--",
                              python, str(WORKLOAD), seconds])
            print("  " + next((l for l in done.stderr.splitlines() if "python:" in l), "(no python line)"))
            run_quiet(["py-spy", "record", "-r", args.frequency, "-f", "raw", "-o", theirs, "--", python, str(WORKLOAD), seconds])
            report[f"{version} record"] = compare(f"{version} record", (major, minor), ours, theirs, failures)

            print(f"== CPython {version}: attach --pid")
            target = start_workload(python)
            try:
                done = run_quiet([str(Path(args.flameshift).resolve()), "attach", "--pid", str(target.pid),
                                  "--duration", f"{seconds}s", "-F", args.frequency, "--python", "on", "-o", ours])
                print("  " + next((l for l in done.stderr.splitlines() if "python:" in l), "(no python line)"))
                run_quiet(["py-spy", "record", "-r", args.frequency, "-f", "raw", "-o", theirs, "--pid", str(target.pid),
                           "--duration", str(int(args.seconds))])
            finally:
                target.kill()
                target.wait()
            report[f"{version} attach"] = compare(f"{version} attach", (major, minor), ours, theirs, failures)
    if not report:
        sys.exit(f"no CPython {args.versions or '3.9-3.13'} found here")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("python frames: every share within 5 points of py-spy, every C call under its caller")


if __name__ == "__main__":
    main()
