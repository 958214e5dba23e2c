#!/usr/bin/env python3
"""Per-call cost of tilenorm.torch.layer_norm against torch.nn.functional.layer_norm, side by
side in one process: each (shape, dtype, direction, threads) cell times both alternately,
`--repeats` times, and prints the median time per call of each and the ratio tilenorm / torch
with its spread (min..max over the repeats).

    PYTHONPATH=build/release/python:python /usr/bin/python3 bench/torch_percall.py
    ... --shapes 64x64,1024x128 --repeats 7 --min-time 0.05
"""
import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import tilenorm.torch as tn

SHAPES = "64x64,1024x128,16384x128,4096x1024,1024x8192,64x1048576"


def make(shape, dtype):
    g = torch.Generator().manual_seed(0)
    rows, C = shape
    x = torch.randn(rows, C, generator=g).to(dtype)
    return (x, torch.ones(C, dtype=dtype), torch.zeros(C, dtype=dtype),
            torch.randn(rows, C, generator=g).to(dtype))


def step(fn, x, w, b, dy, backward, threads):
    if not backward:
        with torch.no_grad():
            return fn(x, w, b, threads)
    xl, wl, bl = (t.detach().requires_grad_() for t in (x, w, b))
    fn(xl, wl, bl, threads).backward(dy)


def tilenorm_fn(x, w, b, threads):
    return tn.layer_norm(x, (x.shape[-1],), w, b, 1e-5, num_threads=threads)


def torch_fn(x, w, b, threads):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def per_call(fn, args, iters):
    t0 = time.perf_counter()
    for _ in range(iters):
        step(fn, *args)
    return (time.perf_counter() - t0) / iters


def cell(shape, dtype, backward, threads, repeats, min_time):
    x, w, b, dy = make(shape, dtype)
    args = (x, w, b, dy, backward, threads)
    for fn in (tilenorm_fn, torch_fn):  # warm up, and size the loop
        step(fn, *args)
    once = max(per_call(torch_fn, args, 1), 1e-6)
    iters = max(1, int(min_time / once))
    ours, theirs = [], []
    for _ in range(repeats):  # alternate, so that both see the same machine load
        ours.append(per_call(tilenorm_fn, args, iters))
        theirs.append(per_call(torch_fn, args, iters))
    ratios = [a / b for a, b in zip(ours, theirs)]
    return statistics.median(ours), statistics.median(theirs), ratios


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load():
    """The 1, 5 and 15 minute load averages: other processes on the machine skew both sides."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default=SHAPES)
    p.add_argument("--dtypes", default="f32,bf16")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.05, help="seconds per timed loop")
    a = p.parse_args()
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {cpu_model()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {a.repeats} repeats, "
          f">= {a.min_time}s per loop; load average {load()}")
    print("| shape | dtype | direction | threads | torch µs | tilenorm µs | ratio (median, min..max) |")
    print("|---|---|---|---|---|---|---|")
    for s in a.shapes.split(","):
        shape = tuple(int(d) for d in s.split("x"))
        for dt in a.dtypes.split(","):
            for backward in (False, True):
                for threads in (int(t) for t in a.threads.split(",")):
                    torch.set_num_threads(threads)
                    ours, theirs, r = cell(shape, dtypes[dt], backward, threads, a.repeats,
                                           a.min_time)
                    print(f"| {s} | {dt} | {'fwd+bwd' if backward else 'fwd'} | {threads} | "
                          f"{theirs * 1e6:.1f} | {ours * 1e6:.1f} | {statistics.median(r):.2f} "
                          f"({min(r):.2f}..{max(r):.2f}) |", flush=True)
    print(f"# done {time.strftime('%H:%M')}; load average {load()}")


if __name__ == "__main__":
    main()
