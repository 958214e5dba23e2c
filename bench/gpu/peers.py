# PyTorch peers for bench/gpu/run.sh, and the combined table.
# Times aten native_layer_norm / native_layer_norm_backward eagerly and under torch.compile on
# the shapes and byte model of shared/anchors/gpu/bench_peers.py, the same way the tilenorm
# benchmark does (CUDA events, warm-up, calls queued back to back, median), then prints one
# table against tilenorm's JSON lines: GB/s, % of the copy ceiling, ratio to the best peer.
#
#   python3 bench/gpu/peers.py --tilenorm tilenorm.jsonl [--out DIR] [--budget-s 200]
import argparse
import json
import os
import time

import torch

EPS = 1e-5
SHAPES = [(32768, 1024), (16384, 4096), (8192, 8192), (4096, 8462), (1024, 65536), (64, 1048576)]
DTYPES = [torch.bfloat16, torch.float32]


def fwd_bytes(n, d, es):
    # read x, write y; read gamma, beta; write mean, rstd
    return 2 * n * d * es + 2 * d * es + 2 * n * 4


def bwd_bytes(n, d, es):
    # read x, dy; write dx; read gamma; write dgamma, dbeta; read mean, rstd
    return 3 * n * d * es + 3 * d * es + 2 * n * 4


def median_ms(fn, warmup=5, iters=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
             for _ in range(iters)]
    for s, e in pairs:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in pairs)
    return times[len(times) // 2]


def copy_ceiling():
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a), warmup=3, iters=20)
    return 2 * n / (ms * 1e-3) / 1e9


def measure_peers(budget_s):
    import torch._dynamo
    for knob in ("cache_size_limit", "recompile_limit"):  # one compile per shape and dtype
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 256)
    t_start = time.time()
    rows = []
    for dtype in DTYPES:
        es = torch.tensor([], dtype=dtype).element_size()
        name = str(dtype).split(".")[-1]
        for (n, d) in SHAPES:
            g = torch.Generator(device="cuda").manual_seed(1234)
            x = torch.randn(n, d, device="cuda", dtype=dtype, generator=g) + 2
            dy = torch.randn(n, d, device="cuda", dtype=dtype, generator=g)
            w = torch.rand(d, device="cuda", dtype=dtype, generator=g) + 0.5
            b = torch.rand(d, device="cuda", dtype=dtype, generator=g) - 0.5
            _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, b, EPS)
            mask = [True, True, True]

            def fwd(x, w, b):
                return torch.ops.aten.native_layer_norm(x, [d], w, b, EPS)

            def bwd(dy, x, mean, rstd, w, b):
                return torch.ops.aten.native_layer_norm_backward(dy, x, [d], mean, rstd, w, b, mask)

            calls = {"fwd": (fwd, (x, w, b), fwd_bytes(n, d, es)),
                     "bwd": (bwd, (dy, x, mean, rstd, w, b), bwd_bytes(n, d, es))}
            for direction, (fn, args, nbytes) in calls.items():
                r = dict(dtype=name, n=n, d=d, dir=direction)
                ms = median_ms(lambda: fn(*args))
                r["eager_ms"], r["eager_GBps"] = ms, nbytes / (ms * 1e-3) / 1e9
                if time.time() - t_start > budget_s:
                    r["compile_error"] = "skipped: time budget"
                else:
                    try:
                        c = torch.compile(fn, dynamic=False)
                        t0 = time.time()
                        c(*args)
                        torch.cuda.synchronize()
                        r["compile_s"] = round(time.time() - t0, 1)
                        ms = median_ms(lambda: c(*args))
                        r["compile_ms"], r["compile_GBps"] = ms, nbytes / (ms * 1e-3) / 1e9
                    except Exception as ex:  # report and keep going
                        r["compile_error"] = repr(ex)[:160]
                rows.append(r)
                print(json.dumps(r), flush=True)
            del x, dy, w, b, mean, rstd
            torch.cuda.empty_cache()
    return rows


def load_tilenorm(path):
    copy, device, rows = None, None, {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["impl"] == "copy":
                copy = r["GBps"]
            elif r["impl"] == "device":
                device = r
            elif r["impl"] == "tilenorm":
                rows[(r["dtype"], r["n"], r["d"], r["dir"])] = r
    return copy, device, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilenorm", required=True, help="JSON lines from layernorm_cuda_bench")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--budget-s", type=float, default=200,
                    help="stop compiling new torch.compile graphs after this many seconds")
    args = ap.parse_args()

    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    try:
        import triton
        info["triton"] = triton.__version__
    except Exception:
        pass
    info["torch_copy_GBps"] = round(copy_ceiling(), 1)
    print(json.dumps(info), flush=True)
    peers = measure_peers(args.budget_s)
    print_table(info, peers, args.tilenorm, args.out)


def print_table(info, peers, tilenorm_path, out_dir):
    copy, device, tn = load_tilenorm(tilenorm_path)
    ceiling = copy or info["torch_copy_GBps"]

    print(f"\n{info['gpu']}: copy ceiling {ceiling:.0f} GB/s (cudaMemcpy D2D, bytes read + written;"
          f" torch copy_ {info['torch_copy_GBps']:.0f} GB/s); torch {info['torch']}"
          + (f", triton {info['triton']}" if "triton" in info else ""))
    print("GB/s = bytes of the model in bench_peers.py / median time. ratio = tilenorm / best peer.")
    head = (f"{'dtype':9} {'rows':>6} {'C':>8} {'dir':3} | {'tilenorm':>8} {'%copy':>6} {'path':>8} | "
            f"{'eager':>7} {'%copy':>6} | {'compile':>7} {'%copy':>6} | {'ratio':>6}")
    print(head)
    print("-" * len(head))
    table = []
    for p in peers:
        t = tn.get((p["dtype"], p["n"], p["d"], p["dir"]))
        best = max(p["eager_GBps"], p.get("compile_GBps", 0.0))
        tg = t["GBps"] if t else None
        comp = p.get("compile_GBps")
        line = (f"{p['dtype']:9} {p['n']:6} {p['d']:8} {p['dir']:3} | "
                + (f"{tg:8.0f} {100 * tg / ceiling:6.1f} {t['path']:>8}" if t else f"{'-':>8} {'-':>6} {'-':>8}")
                + f" | {p['eager_GBps']:7.0f} {100 * p['eager_GBps'] / ceiling:6.1f} | "
                + (f"{comp:7.0f} {100 * comp / ceiling:6.1f}" if comp else f"{'-':>7} {'-':>6}")
                + " | " + (f"{tg / best:6.2f}" if t else f"{'-':>6}"))
        if t and t.get("nan_outputs"):
            line += "  NaN OUTPUTS"
        print(line)
        table.append(dict(p, tilenorm=t, best_peer_GBps=best))
    if out_dir:
        with open(os.path.join(out_dir, "results.json"), "w") as fh:
            json.dump({"info": info, "device": device, "copy_GBps": ceiling, "rows": table}, fh, indent=1)


if __name__ == "__main__":
    main()
