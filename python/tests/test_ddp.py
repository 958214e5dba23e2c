"""Data parallel: 2 gloo processes under DistributedDataParallel (examples/train_ddp.py) against
one process on the full batches."""
import torch

import train_ddp

STEPS = 5


def test_ddp_matches_single_process(tmp_path):
    ranks = train_ddp.run_ddp(str(tmp_path), steps=STEPS, world=2)
    single = train_ddp.run_single(steps=STEPS)
    # The all-reduce averages the two half-batch gradients: the full-batch mean gradient up to f32
    # rounding of the sums' order.
    for name, want in single.items():
        for r, rank in enumerate(ranks):
            torch.testing.assert_close(rank["state"][name], want, atol=1e-6, rtol=1e-5,
                                       msg=lambda m: f"rank {r} {name}: {m}")
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
    # After the all-reduce every rank holds the same LayerNorm gradients, bit for bit.
    grads = ranks[0]["norm_grads"]
    assert set(grads) == {"blocks.0.norm.weight", "blocks.0.norm.bias", "blocks.1.norm.weight",
                          "blocks.1.norm.bias", "norm.weight", "norm.bias"}
    for name, g in grads.items():
        assert torch.equal(g, ranks[1]["norm_grads"][name]), name
        assert g.abs().sum() > 0, name
