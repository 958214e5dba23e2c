"""Every dtype torch.nn.LayerNorm takes on CPU: float64 on the default (cpu) backend, in float64
throughout and independent of the thread count; `.double()` models train; float16, which torch
1.13's CPU LayerNorm refuses, is refused by name."""
import pytest
import torch
import torch.nn.functional as F

import tilenorm.torch as tn
from test_layernorm import assert_close, make_inputs, run
from test_rmsnorm import torch_rms_norm


@pytest.mark.parametrize("shape", [(13, 20), (7, 1000), (200, 33), (3, 5000)])
def test_f64_cpu_matches_torch(shape):
    x, dy, w, b = make_inputs(shape, dtype=torch.float64)
    got = run(tn.layer_norm, x, dy, w, b, shape[-1:])
    ref = run(F.layer_norm, x, dy, w, b, shape[-1:])
    for name, g, r in zip(("y", "dx", "dweight", "dbias"), got, ref):
        assert g.dtype == torch.float64
        assert_close(name, g, r, 1e-12, 1e-12)


def test_f64_rms_cpu_matches_torch():
    x, dy, w, _ = make_inputs((9, 300), dtype=torch.float64)
    xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = tn.rms_norm(xs, 300, ws, 1e-6)
    y.backward(dy)
    y_ref = torch_rms_norm(xr, (300,), wr, 1e-6)
    y_ref.backward(dy)
    assert_close("y", y.detach(), y_ref.detach(), 1e-12, 1e-12)
    assert_close("dx", xs.grad, xr.grad, 1e-12, 1e-12)
    assert_close("dweight", ws.grad, wr.grad, 1e-12, 1e-12)


def test_f64_cpu_bitwise_across_thread_counts():
    x, dy, w, b = make_inputs((200, 777), dtype=torch.float64)
    one = run(tn.layer_norm, x, dy, w, b, (777,), num_threads=1)
    two = run(tn.layer_norm, x, dy, w, b, (777,), num_threads=2)
    for g1, g2 in zip(one, two):
        assert torch.equal(g1, g2)


def test_gradcheck_default_backend_f64():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 2, 7, generator=g, dtype=torch.float64) + 1).requires_grad_()
    w = (torch.rand(2, 7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(2, 7, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: tn.layer_norm(x, (2, 7), w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: tn.rms_norm(x, (2, 7), w, 1e-5), (x, w))


def test_double_model_trains_like_torch():
    """model.double() on the default backend: ten SGD steps of a small pre-norm MLP with
    tilenorm's LayerNorm follow the same model with torch's to 1e-10."""
    def make(norm_cls):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(16, 32), norm_cls(32), torch.nn.Tanh(),
                                   torch.nn.Linear(32, 1)).double()

    losses = []
    for cls in (tn.nn.LayerNorm, torch.nn.LayerNorm):
        model = make(cls)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        curve = []
        for _ in range(10):
            x = torch.randn(8, 16, generator=g, dtype=torch.float64)
            loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        losses.append(curve)
    assert losses[0][-1] < losses[0][0]
    assert max(abs(a - b) for a, b in zip(*losses)) <= 1e-10


def test_float16_refused_as_torch_does():
    x = torch.ones(2, 8, dtype=torch.float16)
    with pytest.raises(RuntimeError):  # torch 1.13's CPU LayerNorm has no Half kernel
        F.layer_norm(x, (8,))
    with pytest.raises(TypeError, match=r"x has dtype torch.float16; backend 'cpu' takes"):
        tn.layer_norm(x, 8)
