#!/usr/bin/env python3
"""Generates a large, realistic `perf script` capture for benchmarks.

A call tree of 2,000 functions (Rust-, C++- and C-style names) across a
binary and three shared libraries; samples walk it 5 to 60 frames deep;
each function has a few dozen distinct sample addresses, as a real
capture does. Deterministic (fixed seed).

    scripts/gen-perf-script.py --mb 120 > bench-data/big.perf-script
"""
import argparse
import random
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=120)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    modules = ["/usr/bin/server", "/usr/lib/x86_64-linux-gnu/libc.so.6",
               "/usr/lib/x86_64-linux-gnu/libssl.so.3", "[kernel.kallsyms]"]
    functions = []
    for i in range(2000):
        style = i % 4
        if style == 0:
            name = f"server::handlers::module_{i % 41}::handle_{i}"
        elif style == 1:
            name = f"std::vector<int, std::allocator<int> >::push_{i}(int const&)"
        elif style == 2:
            name = f"c_function_{i}"
        else:
            name = f"<server::Type{i % 13} as core::fmt::Debug>::fmt_{i}"
        module = modules[0] if i < 1400 else modules[1 + (i % 3)]
        base = 0x400000 + i * 0x400
        addrs = [base + rng.randrange(0x3F0) for _ in range(rng.randrange(4, 40))]
        functions.append((name, module, base, addrs))
    children = [[rng.randrange(len(functions)) for _ in range(rng.randrange(1, 6))]
                for _ in range(len(functions))]
    target = int(args.mb * 1024 * 1024)
    written = 0
    out = sys.stdout
    t = 1000.0
    tids = [(4242, 4242 + k) for k in range(8)]
    buf = []
    while written < target:
        pid, tid = rng.choice(tids)
        t += 0.001
        depth = rng.randrange(5, 60)
        f = rng.randrange(16)
        path = []
        for _ in range(depth):
            path.append(f)
            f = rng.choice(children[f])
        lines = [f"server {pid}/{tid} [00{tid % 2}] {t:.6f}:    1001001 cpu-clock:ppp: \n"]
        for f in reversed(path):
            name, module, base, addrs = functions[f]
            addr = rng.choice(addrs)
            if rng.random() < 0.01:
                sym = "[unknown]"
            else:
                sym = f"{name}+0x{addr - base:x}"
            lines.append(f"\t{addr:16x} {sym} ({module})\n")
        lines.append("\n")
        chunk = "".join(lines)
        buf.append(chunk)
        written += len(chunk)
        if len(buf) >= 1000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
