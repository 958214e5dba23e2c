# DRAM bytes per LayerNorm call from Nsight Compute, against the byte model (bench/gpu/run.sh).
# Reads ncu --csv --print-units base logs named ncu-<rows>x<C>.csv, each from one
# `norm_cuda_bench --shapes <rows>x<C> --dtypes bf16 --iters 1 --warmup 0 --norms layernorm
# --residual off` run, which makes each direction's calls twice (validation, timed). Prints and
# writes one CSV: per kernel, then per call and direction with the model's bytes.
#
#   python3 bench/gpu/ncu_dram.py --out ncu.csv build/cuda/ncu-*.csv
import argparse
import csv
import os
import re
from collections import defaultdict

from peers import bwd_bytes, fwd_bytes

METRICS = {"dram__bytes_read.sum": "read", "dram__bytes_write.sum": "write",
           "gpu__time_duration.sum": "ns"}


def read_log(path):
    """{(launch id, kernel name): {read, write, ns}} from one ncu CSV log."""
    with open(path) as fh:
        lines = [ln for ln in fh if ln.startswith('"')]  # ncu's own messages start with ==
    launches = defaultdict(dict)
    for r in csv.DictReader(lines):
        key = METRICS.get(r.get("Metric Name"))
        if key:
            m = re.search(r"norm_\w+", r["Kernel Name"])  # without namespace and template
            name = m.group(0) if m else r["Kernel Name"]
            launches[(int(r["ID"]), name)][key] = float(r["Metric Value"].replace(",", ""))
    return launches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", type=int, default=2, help="calls per direction in each log")
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()
    rows = []
    for path in args.logs:
        m = re.search(r"(\d+)x(\d+)", os.path.basename(path))
        if not m:
            continue
        n, d = int(m.group(1)), int(m.group(2))
        per_kernel = defaultdict(lambda: defaultdict(float))
        for (_, name), v in read_log(path).items():
            k = per_kernel[name]
            k["launches"] += 1
            for key in ("read", "write", "ns"):
                k[key] += v.get(key, 0.0)
        for name, k in sorted(per_kernel.items()):
            rows.append(dict(shape=f"{n}x{d}", dir="", kernel=name, launches=int(k["launches"]),
                             dram_read=k["read"], dram_write=k["write"], ns=k["ns"]))
        for direction, model in (("fwd", fwd_bytes("layernorm", False, n, d, 2)),
                                 ("bwd", bwd_bytes("layernorm", False, n, d, 2))):
            word = "forward" if direction == "fwd" else "backward"
            ks = [k for name, k in per_kernel.items() if word in name]
            if not ks:
                continue
            tot = {key: sum(k[key] for k in ks) / args.calls for key in ("read", "write", "ns")}
            rows.append(dict(shape=f"{n}x{d}", dir=direction, kernel="(per call)",
                             launches=sum(k["launches"] for k in ks) / args.calls,
                             dram_read=tot["read"], dram_write=tot["write"], ns=tot["ns"],
                             model_bytes=model,
                             dram_over_model=(tot["read"] + tot["write"]) / model))
    fields = ["shape", "dir", "kernel", "launches", "dram_read", "dram_write", "ns", "model_bytes",
              "dram_over_model"]
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(rows)
    print("bf16; DRAM MB per call (read + write) from ncu, against the byte model:")
    for r in rows:
        if r["dir"]:
            print(f"{r['shape']:>12} {r['dir']}: {(r['dram_read'] + r['dram_write']) / 1e6:9.1f} MB"
                  f" = {r['dram_over_model']:.3f} x model ({r['model_bytes'] / 1e6:.1f} MB),"
                  f" {r['launches']:g} launches, {r['ns'] / 1e3:.1f} us in kernels")


if __name__ == "__main__":
    main()
