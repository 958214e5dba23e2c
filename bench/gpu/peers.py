# PyTorch peers for bench/gpu/run.sh, and the combined table.
# Times, eagerly and under torch.compile, on the shapes of docs/performance.md's GPU section and
# the same way the tilenorm benchmark does (CUDA events, warm-up, calls queued back to back,
# median): LayerNorm as aten native_layer_norm / native_layer_norm_backward; RMSNorm as
# torch.nn.functional.rms_norm where torch has it, else composed ops in fp32 (x * rsqrt(mean(x^2)
# + eps) * w); the fused residual add as h = x + residual, then the norm, returning y and h. The
# backward of RMSNorm and of the residual variants is autograd's, taking dy (and dh_in on h).
# Then prints one table against tilenorm's JSON lines: GB/s (the byte model of
# docs/performance.md), % of the copy ceiling, ratio to the best peer. With --no-peers (no torch,
# or torch without CUDA) the table has tilenorm's columns only.
#
#   python3 bench/gpu/peers.py --tilenorm tilenorm.jsonl [--out DIR] [--budget-s 200] [--no-peers]
import argparse
import json
import os
import time

EPS = 1e-5
SHAPES = [(32768, 1024), (16384, 4096), (8192, 8192), (4096, 8462), (1024, 65536), (64, 1048576)]
DTYPES = ["bfloat16", "float32"]
VARIANTS = [("layernorm", False), ("rmsnorm", False), ("layernorm", True), ("rmsnorm", True)]


def fwd_bytes(norm, residual, n, d, es):
    # read x (and residual), write y (and h); read gamma (and beta); write mean (LayerNorm), rstd
    params = 2 if norm == "layernorm" else 1
    return (4 if residual else 2) * n * d * es + params * d * es + params * n * 4


def bwd_bytes(norm, residual, n, d, es):
    # read x, dy (and dh_in), write dx; read gamma, write dgamma (and dbeta); read mean, rstd
    params = 2 if norm == "layernorm" else 1
    return (4 if residual else 3) * n * d * es + (1 + params) * d * es + params * n * 4


def median_ms(fn, warmup=5, iters=50):
    import torch
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
    import torch
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a), warmup=3, iters=20)
    return 2 * n / (ms * 1e-3) / 1e9


def autograd_calls(torch, norm, residual, d, x, r, w, b, dy, dh):
    """(forward, backward) for one variant through autograd (eager or compiled by `wrap`)."""
    F = torch.nn.functional

    def normalize(h, w, b):
        if norm == "layernorm":
            return F.layer_norm(h, [d], w, b, EPS)
        if hasattr(F, "rms_norm"):
            return F.rms_norm(h, [d], w, EPS)
        hf = h.float()
        return (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + EPS) * w.float()).to(h.dtype)

    def model(x, r, w, b):
        if residual:
            h = x + r
            return normalize(h, w, b), h
        return (normalize(x, w, b),)

    params = [w, b] if norm == "layernorm" else [w]
    grads = (dy, dh) if residual else (dy,)

    def calls(wrap):
        fn = wrap(model)

        def fwd():
            with torch.no_grad():
                return fn(x, r, w, b)

        xg, pg = x.detach().requires_grad_(), [p.detach().requires_grad_() for p in params]
        outs = fn(xg, r, *pg) if norm == "layernorm" else fn(xg, r, pg[0], None)

        def bwd():
            return torch.autograd.grad(outs, [xg] + pg, grads, retain_graph=True)

        return fwd, bwd

    return calls


def measure_peers(budget_s):
    import torch
    import torch._dynamo
    for knob in ("cache_size_limit", "recompile_limit"):  # one compile per shape and dtype
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 256)
    t_start = time.time()
    rows = []
    for norm, residual in VARIANTS:
        for name in DTYPES:
            dtype = getattr(torch, name)
            es = torch.tensor([], dtype=dtype).element_size()
            for (n, d) in SHAPES:
                g = torch.Generator(device="cuda").manual_seed(1234)
                x = torch.randn(n, d, device="cuda", dtype=dtype, generator=g) + 2
                dy = torch.randn(n, d, device="cuda", dtype=dtype, generator=g)
                w = torch.rand(d, device="cuda", dtype=dtype, generator=g) + 0.5
                b = torch.rand(d, device="cuda", dtype=dtype, generator=g) - 0.5
                r = dh = None
                if residual:
                    r = torch.randn(n, d, device="cuda", dtype=dtype, generator=g)
                    dh = torch.randn(n, d, device="cuda", dtype=dtype, generator=g)
                nbytes = {"fwd": fwd_bytes(norm, residual, n, d, es),
                          "bwd": bwd_bytes(norm, residual, n, d, es)}
                if norm == "layernorm" and not residual:
                    # aten's own kernels, without autograd, eager and compiled.
                    _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, b, EPS)
                    mask = [True, True, True]

                    def calls(wrap):
                        f = wrap(lambda x, w, b:
                                 torch.ops.aten.native_layer_norm(x, [d], w, b, EPS))
                        bk = wrap(lambda dy, x, mean, rstd, w, b:
                                  torch.ops.aten.native_layer_norm_backward(
                                      dy, x, [d], mean, rstd, w, b, mask))
                        return (lambda: f(x, w, b)), (lambda: bk(dy, x, mean, rstd, w, b))
                else:
                    calls = autograd_calls(torch, norm, residual, d, x, r, w, b, dy, dh)
                eager = calls(lambda f: f)
                compiled = None
                for i, direction in enumerate(("fwd", "bwd")):
                    rec = dict(norm=norm, residual=residual, dtype=name, n=n, d=d, dir=direction)
                    ms = median_ms(eager[i])
                    rec["eager_ms"], rec["eager_GBps"] = ms, nbytes[direction] / (ms * 1e-3) / 1e9
                    if time.time() - t_start > budget_s:
                        rec["compile_error"] = "skipped: time budget"
                    else:
                        try:
                            t0 = time.time()
                            if compiled is None:
                                compiled = calls(lambda f: torch.compile(f, dynamic=False))
                            compiled[i]()
                            torch.cuda.synchronize()
                            rec["compile_s"] = round(time.time() - t0, 1)
                            ms = median_ms(compiled[i])
                            rec["compile_ms"] = ms
                            rec["compile_GBps"] = nbytes[direction] / (ms * 1e-3) / 1e9
                        except Exception as ex:  # report and keep going
                            rec["compile_error"] = repr(ex)[:160]
                    rows.append(rec)
                    print(json.dumps(rec), flush=True)
                del x, dy, w, b, r, dh, eager, compiled
                torch.cuda.empty_cache()
    return rows


def row_key(r):
    return (r.get("norm", "layernorm"), bool(r.get("residual", False)), r["dtype"], r["n"], r["d"],
            r["dir"])


def load_tilenorm(path):
    copy, device, rows = None, None, {}
    if not os.path.exists(path):
        return copy, device, rows
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
                rows[row_key(r)] = r
    return copy, device, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilenorm", required=True, help="JSON lines from norm_cuda_bench")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--budget-s", type=float, default=200,
                    help="stop compiling new torch.compile graphs after this many seconds")
    ap.add_argument("--no-peers", action="store_true", help="tilenorm's columns only; no torch")
    args = ap.parse_args()

    info, peers = {}, []
    if not args.no_peers:
        import torch
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
    ceiling = copy or info.get("torch_copy_GBps")
    if not ceiling:
        print("no copy ceiling: neither norm_cuda_bench nor torch measured one")
        return
    gpu = (device or {}).get("gpu") or info.get("gpu", "?")
    print(f"\n{gpu}: copy ceiling {ceiling:.0f} GB/s (cudaMemcpy D2D, bytes read + written"
          + (f"; torch copy_ {info['torch_copy_GBps']:.0f} GB/s); torch {info['torch']}"
             if info else "); no PyTorch peers")
          + (f", triton {info['triton']}" if "triton" in info else ""))
    print("GB/s = bytes of the byte model (docs/performance.md) / median time. "
          "ratio = tilenorm / best peer. +res: the fused residual add (h = x + residual).")
    head = (f"{'norm':13} {'dtype':9} {'rows':>6} {'C':>8} {'dir':3} | {'tilenorm':>8} "
            f"{'%copy':>6} {'path':>8} | {'eager':>7} {'%copy':>6} | {'compile':>7} {'%copy':>6} | {'ratio':>6}")
    print(head)
    print("-" * len(head))
    keys = list(tn)  # tilenorm's rows in its order, then any peer row it lacks
    by_key = {row_key(p): p for p in peers}
    keys += [k for k in by_key if k not in tn]
    table = []
    for k in keys:
        t, p = tn.get(k), by_key.get(k)
        tg = t["GBps"] if t else None
        eager = p["eager_GBps"] if p else None
        comp = p.get("compile_GBps") if p else None
        best = max(eager, comp or 0.0) if p else None

        def cell(v, w=7):
            return f"{v:{w}.0f} {100 * v / ceiling:6.1f}" if v else f"{'-':>{w}} {'-':>6}"

        line = (f"{k[0] + (' +res' if k[1] else ''):13} {k[2]:9} {k[3]:6} {k[4]:8} {k[5]:3} | "
                f"{cell(tg, 8)} "
                + (f"{t['path']:>8}" if t else f"{'-':>8}")
                + f" | {cell(eager)} | {cell(comp)} | "
                + (f"{tg / best:6.2f}" if t and p else f"{'-':>6}"))
        if t and t.get("nan_outputs"):
            line += "  NaN OUTPUTS"
        print(line)
        key = dict(zip(("norm", "residual", "dtype", "n", "d", "dir"), k))
        table.append(dict(p or key, tilenorm=t, best_peer_GBps=best))
    if out_dir:
        with open(os.path.join(out_dir, "results.json"), "w") as fh:
            json.dump({"info": info, "device": device, "copy_GBps": ceiling, "rows": table}, fh, indent=1)


if __name__ == "__main__":
    main()
