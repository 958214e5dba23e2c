"""Second-order gradients: gradgradcheck of LayerNorm and RMSNorm (with and without the fused
residual add) in float64, a WGAN-GP gradient penalty against torch's own LayerNorm, and the
first-order backward staying on tilenorm's kernels."""
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

import tilenorm.torch as tn
from test_rmsnorm import torch_rms_norm

# Backends gradgradcheck runs the forward on: the default one for CPU tensors (cpu), and the
# reference.
F64_BACKENDS = [None, "reference"]


def f64(*shape, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) + shift).requires_grad_()


@pytest.mark.parametrize("backend", F64_BACKENDS)
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("with_residual", [False, True])
def test_gradgradcheck(backend, norm, with_residual):
    x, r = f64(3, 2, 6, seed=1, shift=0.5), f64(3, 2, 6, seed=2)
    w, b = f64(2, 6, seed=3, shift=1.0), f64(2, 6, seed=4)

    def f(x, r, w, b):
        kw = dict(residual=r if with_residual else None, backend=backend)
        if norm == "layernorm":
            out = tn.layer_norm(x, (2, 6), w, b, 1e-5, **kw)
        else:
            out = tn.rms_norm(x, (2, 6), w, 1e-5, **kw)
        # (y, h) with a residual: both outputs carry gradients
        return out

    inputs = (x, r, w, b) if norm == "layernorm" else (x, r, w, b.detach())
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def critic(x, params, norm_fn):
    """Linear -> LayerNorm -> tanh -> Linear -> scalar per sample."""
    w1, b1, g, beta, w2 = params
    h = norm_fn(x @ w1 + b1, g, beta)
    return torch.tanh(h) @ w2


def gradient_penalty(x, params, norm_fn):
    (dx,) = torch.autograd.grad(critic(x, params, norm_fn).sum(), x, create_graph=True)
    return ((dx.norm(dim=1) - 1) ** 2).mean()


@pytest.mark.parametrize("backend", F64_BACKENDS)
def test_gradient_penalty_matches_torch(backend):
    """WGAN-GP: the gradient of a penalty on the critic's input gradient, with respect to every
    parameter (LayerNorm's included), as torch's LayerNorm gives it, to 1e-10 in float64."""
    x = f64(16, 10, seed=5)
    params = [f64(10, 24, seed=6), f64(24, seed=7), f64(24, seed=8, shift=1.0), f64(24, seed=9),
              f64(24, seed=10)]
    ours = gradient_penalty(
        x, params, lambda h, g, b: tn.layer_norm(h, 24, g, b, backend=backend))
    ref = gradient_penalty(x, params, lambda h, g, b: F.layer_norm(h, (24,), g, b))
    assert abs(ours.item() - ref.item()) <= 1e-12 * abs(ref.item())
    got = torch.autograd.grad(ours, params)
    want = torch.autograd.grad(ref, params)
    for i, (a, b) in enumerate(zip(got, want)):
        err = (a - b).abs().max().item()
        assert err <= 1e-10 * max(1.0, b.abs().max().item()), f"param {i}: {err:.3g}"
    # and .backward() through the same penalty
    gp = gradient_penalty(x, params, lambda h, g, b: tn.layer_norm(h, 24, g, b, backend=backend))
    gp.backward()
    for i, (p, b) in enumerate(zip(params, want)):
        assert (p.grad - b).abs().max().item() <= 1e-10 * max(1.0, b.abs().max().item()), i


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_second_order_low_precision(dtype, tol, norm):
    """f32 and bf16 on the default backend: the Hessian-vector product x -> d/dx <dL/dx, v>
    matches the float64 torch composition within the dtype's precision."""
    g = torch.Generator().manual_seed(11)
    x64 = torch.randn(8, 40, generator=g, dtype=torch.float64) + 1
    w64 = torch.rand(40, generator=g, dtype=torch.float64) + 0.5
    v = torch.randn(8, 40, generator=g, dtype=torch.float64)

    def hvp(fn, x, w):
        x = x.detach().requires_grad_()
        (dx,) = torch.autograd.grad(fn(x, w).pow(2).sum(), x, create_graph=True)
        (ddx,) = torch.autograd.grad((dx * v.to(dx.dtype)).sum(), x)
        return ddx.double()

    if norm == "layernorm":
        ours = hvp(lambda x, w: tn.layer_norm(x, 40, w), x64.to(dtype), w64.to(dtype))
        ref = hvp(lambda x, w: F.layer_norm(x, (40,), w), x64.to(dtype).double(),
                  w64.to(dtype).double())
    else:
        ours = hvp(lambda x, w: tn.rms_norm(x, 40, w, 1e-5), x64.to(dtype), w64.to(dtype))
        ref = hvp(lambda x, w: torch_rms_norm(x, (40,), w, 1e-5), x64.to(dtype).double(),
                  w64.to(dtype).double())
    assert (ours - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


def test_first_order_stays_on_the_kernels():
    x = torch.randn(4, 33, requires_grad=True)
    y = tn.layer_norm(x, 33)
    with profile() as prof:
        y.backward(torch.ones_like(y))
    assert "tilenorm::layernorm_backward" in [e.name for e in prof.events()]
