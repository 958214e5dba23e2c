#!/usr/bin/env python3
"""Markdown table of one norm_bench run (Google Benchmark JSON, --benchmark_repetitions >= 2).

Per case (shape, dtype, direction, threads, cache): GB/s of every implementation (median over
repetitions), tilenorm's % of the 2-thread copy measured in the same run (best repetition, as
STREAM reports), tilenorm / best peer, and the spread of tilenorm's repetitions
((max - min) / median). Usage: bench_table.py run.json [--cache warm|cold|both]
"""
import argparse
import collections
import json
import statistics


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json_file")
    ap.add_argument("--cache", default="both", choices=["warm", "cold", "both"])
    args = ap.parse_args()
    with open(args.json_file) as f:
        run = json.load(f)

    gbps = collections.defaultdict(list)  # (impl, case) -> [GB/s per repetition]
    labels = {}
    copy = collections.defaultdict(list)
    order = []
    for b in run["benchmarks"]:
        if b.get("run_type") != "iteration" or "error_occurred" in b:
            continue
        parts = b["run_name"].split("/")
        rate = b["bytes_per_second"] / 1e9
        if parts[0] == "BM_Copy":
            copy[int(parts[1])].append(rate)
            continue
        op, impl, direction, dtype, shape, threads, cache = parts[:7]
        case = (op, shape, dtype, direction, int(threads.split(":")[1]), cache)
        if case not in order:
            order.append(case)
        gbps[(impl, case)].append(rate)
        labels[(impl, case)] = b.get("label", "")

    impls = []
    for impl, _ in gbps:
        if impl not in impls:
            impls.append(impl)
    peers = [i for i in impls if i != "tilenorm"]
    ceiling = max(copy[2]) if copy.get(2) else max(copy[max(copy)])

    ctx = run["context"]
    print(f"Run: {ctx.get('date', '?')}, {ctx.get('machine', '?')}; peers: {ctx.get('peers', '?')}.")
    for t in sorted(copy):
        print(f"Copy, {t} thread(s): best {max(copy[t]):.1f} GB/s, median {statistics.median(copy[t]):.1f} "
              f"over {len(copy[t])} repetitions.")
    print(f"% copy = tilenorm GB/s / {ceiling:.1f} GB/s (best 2-thread copy of this run).\n")
    head = ["op", "shape", "dtype", "dir", "thr", "cache"] + [f"{i} GB/s" for i in impls]
    head += ["tilenorm % copy", "vs best peer", "tilenorm spread", "check"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case in order:
        op, shape, dtype, direction, threads, cache = case
        if args.cache != "both" and cache != args.cache:
            continue
        med = {i: statistics.median(gbps[(i, case)]) for i in impls if (i, case) in gbps}
        row = [op, shape, dtype, direction, str(threads), cache]
        row += [f"{med[i]:.1f}" if i in med else "-" for i in impls]
        t = gbps.get(("tilenorm", case))
        best_peer = max((med[p] for p in peers if p in med), default=0)
        row.append(f"{100 * med['tilenorm'] / ceiling:.0f}" if t else "-")
        row.append(f"{med['tilenorm'] / best_peer:.2f}x" if t and best_peer else "-")
        row.append(f"{100 * (max(t) - min(t)) / statistics.median(t):.0f}%" if t else "-")
        bad = [f"{i}: {labels[(i, case)]}" for i in impls
               if (i, case) in labels and labels[(i, case)] != "ok"]
        row.append("; ".join(bad) if bad else "ok")
        print("| " + " | ".join(row) + " |")

    # The targets of the CPU backend (docs/performance.md), evaluated on this run.
    def med(impl, case):
        v = gbps.get((impl, case))
        return statistics.median(v) if v else None

    print("\nTargets (2-thread copy as the ceiling):")
    dram = ["8192x1024", "2048x4096", "1024x8192"]
    misses = []
    for case in order:
        op, shape, dtype, direction, threads, cache = case
        if shape in dram and dtype == "f32" and threads == 2:
            pct = 100 * med("tilenorm", case) / ceiling
            if pct < 85:
                misses.append(f"{op} {shape} {direction} {cache} {pct:.0f}%")
    print(f"- >= 85 % of copy, f32, 2 threads, {', '.join(dram)}: "
          + ("met" if not misses else "missed on " + "; ".join(misses)))
    slower = []
    for case in order:
        t = med("tilenorm", case)
        best = max((med(p, case) for p in peers if med(p, case)), default=None)
        if t and best and t <= best:
            slower.append("{} {} {} {} t{} {}: {:.2f}x".format(*case, t / best))
    print("- faster than the best peer on every case: "
          + ("met" if not slower else f"missed on {len(slower)} of {len(order)}: " + "; ".join(slower)))
    short = []
    for case in order:
        if case[1] in ("4x1048576", "32x65536"):
            t = med("tilenorm", case)
            best = max((med(p, case) for p in peers if med(p, case)), default=None)
            if t and best and t < 1.5 * best:
                short.append("{} {} {} {} t{} {}: {:.2f}x".format(*case, t / best))
    print("- >= 1.5x the best peer on 4x1048576 and 32x65536: "
          + ("met" if not short else f"missed on {len(short)}: " + "; ".join(short)))


if __name__ == "__main__":
    main()
