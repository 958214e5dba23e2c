"""The modules as drop-ins: num_threads validated like the CLI's --threads, the in-place class
swap, torch 1.13's and 2.1's positional constructor orders, and nn.TransformerEncoderLayer's
eval fast path (which calls torch's own kernel, bypassing any norm module)."""
import pytest
import torch
import torch.nn.functional as F

import tilenorm.torch as tn
from test_layernorm import assert_close


@pytest.mark.parametrize("bad", [-1, 1025, 100000])
def test_num_threads_range(bad):
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match=rf"num_threads must be in 0\.\.1024 .*got {bad}"):
        tn.layer_norm(x, 8, num_threads=bad)
    with pytest.raises(ValueError, match=r"num_threads must be in 0\.\.1024"):
        tn.rms_norm(x, 8, num_threads=bad)
    with pytest.raises(ValueError, match=r"num_threads must be in 0\.\.1024"):
        tn.nn.LayerNorm(8, num_threads=bad)
    with pytest.raises(TypeError, match=r"num_threads must be an int or None, got float"):
        tn.layer_norm(x, 8, num_threads=2.0)


def test_num_threads_limits_run():
    x = torch.randn(3, 8)
    ref = F.layer_norm(x, (8,))
    for n in (0, 1, 2):
        assert_close("y", tn.layer_norm(x, 8, num_threads=n), ref, 1e-5, 1e-5)


def test_class_swap_in_place():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    x = torch.randn(4, 8)
    ref = model(x).detach()
    model[1].__class__ = tn.nn.LayerNorm
    assert isinstance(model[1], tn.nn.LayerNorm) and model[1].backend is None
    out = model(x)
    assert_close("y", out.detach(), ref, 1e-5, 1e-5)
    out.sum().backward()
    assert model[1].weight.grad is not None


def test_positional_orders():
    # torch 1.13: (normalized_shape, eps, elementwise_affine, device, dtype)
    m = tn.nn.LayerNorm(8, 1e-6, True, "cpu", torch.float64)
    assert m.weight.dtype == torch.float64 and m.bias is not None and m.eps == 1e-6
    ref = torch.nn.LayerNorm(8, 1e-6, True, "cpu", torch.float64)
    assert m.weight.dtype == ref.weight.dtype and m.weight.device == ref.weight.device
    # torch 2.1: (normalized_shape, eps, elementwise_affine, bias, device, dtype)
    m = tn.nn.LayerNorm(8, 1e-6, True, False, "cpu", torch.float64)
    assert m.bias is None and m.weight.dtype == torch.float64
    m = tn.nn.LayerNorm(8, 1e-6, True, None, torch.bfloat16)
    assert m.weight.dtype == torch.bfloat16 and m.bias is not None
    with pytest.raises(TypeError, match="positional"):
        tn.nn.LayerNorm(8, 1e-6, True, True, "cpu", torch.float64, 3)


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_transformer_fast_path_bypasses_the_norms():
    """In eval without grad, nn.TransformerEncoderLayer (batch_first) runs torch's fused kernel
    with norm1/norm2's parameters: the norm modules are not called. With grad enabled (or a
    src_mask, or in training) the ordinary path calls them."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    for name in ("norm1", "norm2"):
        getattr(layer, name).__class__ = tn.nn.LayerNorm
    calls = count_calls(layer.norm1)
    layer.eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        fast = layer(x)
    assert not calls, "torch's fast path ran; tilenorm was bypassed"
    slow = layer(x)  # grad enabled: the parameters require grad, so no fast path
    assert len(calls) == 1
    assert_close("y", slow.detach(), fast, 1e-5, 1e-5)
