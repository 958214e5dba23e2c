"""Data-parallel training with tilenorm's LayerNorm: torch.distributed (gloo) with 2 processes on
this machine, DistributedDataParallel over examples/train_mlp.py's model, each rank on its half
of every batch. Prints how far the result is from one process training on the full batches.

    PYTHONPATH=build/release/python:python /usr/bin/python3 examples/train_ddp.py [--steps 10]
"""
import argparse
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_mlp  # noqa: E402

DIM, HIDDEN, CLASSES, BATCH, LR = 32, 64, 10, 32, 0.05


def batches(steps):
    x, y = train_mlp.synthetic_data(BATCH * steps, DIM, CLASSES)
    return [(x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH]) for s in range(steps)]


def train(model, steps, rank=0, world=1):
    """SGD on `steps` batches; rank r takes rows [r*B/world, (r+1)*B/world) of each. Returns the
    gradients of the LayerNorm parameters at the last step (after DDP's all-reduce)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    shard = BATCH // world
    grads = {}
    for x, y in batches(steps):
        rows = slice(rank * shard, (rank + 1) * shard)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        grads = {n.removeprefix("module."): p.grad.clone()
                 for n, p in model.named_parameters() if ".norm." in f".{n}"}
        opt.step()
    return grads


def worker(rank, world, init_file, out_dir, steps, backend):
    torch.set_num_threads(1)  # two processes share this machine's cores
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(
            train_mlp.make_model("tilenorm", backend, DIM, HIDDEN, CLASSES))
        grads = train(model, steps, rank, world)
        state = {k.removeprefix("module."): v for k, v in model.state_dict().items()}
        torch.save({"state": state, "norm_grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ddp(out_dir, steps=10, world=2, backend="cpu"):
    """Spawns `world` ranks; returns what each saved: {"state", "norm_grads"}."""
    init_file = os.path.join(out_dir, "init")  # a fresh folder per run: no port to collide on
    mp.spawn(worker, args=(world, init_file, out_dir, steps, backend), nprocs=world, join=True)
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world)]


def run_single(steps=10, backend="cpu"):
    model = train_mlp.make_model("tilenorm", backend, DIM, HIDDEN, CLASSES)
    train(model, steps)
    return model.state_dict()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilenorm-ddp-") as d:
        ranks = run_ddp(d, a.steps)
    single = run_single(a.steps)
    diff = max((ranks[0]["state"][k] - v).abs().max().item() for k, v in single.items())
    same = all(torch.equal(ranks[0]["norm_grads"][n], ranks[1]["norm_grads"][n])
               for n in ranks[0]["norm_grads"])
    print(f"max |param_ddp - param_single| after {a.steps} steps: {diff:.3g}")
    print(f"LayerNorm grads bitwise equal on both ranks: {same}")


if __name__ == "__main__":
    main()
