"""Trains a small pre-norm residual MLP on synthetic data twice, once with torch.nn.LayerNorm and
once with tilenorm.torch.nn.LayerNorm, from the same seed, and prints how far the loss curves
drift apart and the time per training step of each.

    PYTHONPATH=build/release/python:python /usr/bin/python3 examples/train_mlp.py \
        [--steps 300] [--backend cpu|tile|reference]
"""
import argparse
import functools
import time

import torch
import torch.nn.functional as F

import tilenorm.torch as tn


class Block(torch.nn.Module):
    """x + fc2(gelu(fc1(norm(x)))): the pre-norm residual block of a transformer's MLP."""

    def __init__(self, dim, hidden, norm):
        super().__init__()
        self.norm = norm(dim)
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class MLP(torch.nn.Module):
    def __init__(self, dim, hidden, classes, norm):
        super().__init__()
        self.blocks = torch.nn.Sequential(Block(dim, hidden, norm), Block(dim, hidden, norm))
        self.norm = norm(dim)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(x)))


def make_norm(norm, backend=None):
    """The LayerNorm class for `norm` = "torch" or "tilenorm" (on `backend`)."""
    if norm == "torch":
        return torch.nn.LayerNorm
    return functools.partial(tn.nn.LayerNorm, backend=backend)


def make_model(norm="torch", backend=None, dim=64, hidden=128, classes=10, seed=0):
    torch.manual_seed(seed)  # LayerNorm draws no random numbers: both kinds get the same Linears
    return MLP(dim, hidden, classes, make_norm(norm, backend))


def synthetic_data(n, dim, classes, seed=1):
    """Inputs with a non-zero mean per feature; labels from a fixed random linear teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g) * 2 + torch.randn(dim, generator=g)
    teacher = torch.randn(dim, classes, generator=g)
    return x, (x @ teacher).argmax(dim=1)


def train(norm="torch", backend=None, steps=300, dim=64, hidden=128, classes=10, batch=64,
          batches=8, lr=0.05, seed=0):
    """Plain SGD with momentum over a fixed synthetic set; returns (losses, model, seconds/step)."""
    model = make_model(norm, backend, dim, hidden, classes, seed)
    x, y = synthetic_data(batch * batches, dim, classes)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        rows = slice((step % batches) * batch, (step % batches + 1) * batch)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, model, (time.perf_counter() - start) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--backend", default="cpu")
    p.add_argument("--dim", type=int, default=64)
    a = p.parse_args()
    ref, _, t_ref = train("torch", steps=a.steps, dim=a.dim, hidden=2 * a.dim)
    got, _, t_got = train("tilenorm", a.backend, steps=a.steps, dim=a.dim, hidden=2 * a.dim)
    drift = max(abs(g - r) for g, r in zip(got, ref))
    print(f"loss: first {ref[0]:.6f}, last torch {ref[-1]:.6f} tilenorm {got[-1]:.6f}")
    print(f"max |loss_tilenorm - loss_torch| over {a.steps} steps: {drift:.3g}")
    print(f"time per step: torch.nn.LayerNorm {t_ref * 1e3:.3f} ms, tilenorm '{a.backend}' "
          f"{t_got * 1e3:.3f} ms ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
