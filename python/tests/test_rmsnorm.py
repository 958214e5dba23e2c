"""tilenorm.torch.rms_norm and tilenorm.torch.nn.RMSNorm, forward and backward, against RMSNorm
composed of torch ops in float64 (torch 1.13 has no fused one), and gradcheck through the
reference backend."""
import pytest
import torch

import tilenorm.torch as tn
from test_layernorm import DTYPES, SHAPES, TILE_DPARAMS_BF16, TOL, TILE_SHAPES, assert_close, \
    make_inputs


def torch_rms_norm(x, normalized_shape, weight=None, eps=None):
    """RMSNorm from torch ops, in float64: x / sqrt(mean(x^2) + eps) * weight."""
    dims = tuple(range(-len(normalized_shape), 0))
    x = x.double()
    y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
    return y * weight.double() if weight is not None else y


def run(fn, x, dy, weight, ns, eps, **kw):
    """y and the gradients of x and weight (None where not given) after y.backward(dy)."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, weight)]
    y = fn(leaves[0], ns, leaves[1], eps, **kw)
    y.backward(dy)
    return [y.detach()] + [t.grad if t is not None else None for t in leaves]


def check_against_torch(shape, dtype_name, backend, eps=1e-5):
    dtype = DTYPES[dtype_name]
    x, dy, w, _ = make_inputs(shape, dtype=dtype)
    got = run(tn.rms_norm, x, dy, w, shape[-1:], eps, backend=backend)
    ref = run(torch_rms_norm, x.double(), dy.double(), w.double(), shape[-1:], eps)
    atol, rtol = TOL[(dtype_name, backend)]
    for name, g, r in zip(("y", "dx"), got[:2], ref[:2]):
        assert g.dtype == dtype
        assert_close(name, g, r, atol, rtol)
    if (dtype_name, backend) == ("bf16", "tile"):
        atol, rtol = TILE_DPARAMS_BF16
    assert got[2].dtype == dtype
    assert_close("dweight", got[2], ref[2], atol, rtol)


@pytest.mark.parametrize("shape", [s for s, _ in SHAPES], ids=[w for _, w in SHAPES])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_matches_torch(shape, dtype, backend):
    check_against_torch(shape, dtype, backend)


@pytest.mark.parametrize("shape", [s for s, _ in TILE_SHAPES], ids=[w for _, w in TILE_SHAPES])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_tile_matches_torch(shape, dtype):
    check_against_torch(shape, dtype, "tile")


def test_gradcheck_reference_f64():
    """Finite differences in float64 through the reference backend, with a 2-dim normalized
    shape, with and without the weight."""
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 2, 7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    w = (torch.rand(2, 7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w: tn.rms_norm(x, (2, 7), w, 1e-5, backend="reference"), (x, w))
    assert torch.autograd.gradcheck(lambda x: tn.rms_norm(x, 7, backend="reference"), (x,))


@pytest.mark.parametrize("dtype,eps", [(torch.float32, 2.0 ** -23), (torch.bfloat16, 2.0 ** -23),
                                       (torch.float64, 2.0 ** -52)])
def test_default_eps_is_torchs(dtype, eps):
    """eps=None is torch's default: the machine epsilon of the compute dtype (float32's for
    bfloat16 data too). A zero row makes it visible: y = 0 and dx = dy * weight / sqrt(eps)."""
    x = torch.zeros(2, 16, dtype=dtype)
    dy = torch.full((2, 16), 2.0 ** -20, dtype=dtype)
    y, dx, _ = run(tn.rms_norm, x, dy, None, (16,), None)
    assert torch.equal(y, torch.zeros_like(x))
    assert_close("dx", dx, dy.double() / eps ** 0.5, 1e-2 if dtype == torch.bfloat16 else 1e-6,
                 1e-2 if dtype == torch.bfloat16 else 1e-6)


@pytest.mark.parametrize("elementwise_affine", [True, False])
def test_module_matches_torch(elementwise_affine):
    torch.manual_seed(0)
    m = tn.nn.RMSNorm((5, 6), eps=1e-6, elementwise_affine=elementwise_affine)
    assert (m.weight is None) == (not elementwise_affine)
    if m.weight is not None:
        assert torch.equal(m.weight.detach(), torch.ones(5, 6))
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
    x, dy, _, _ = make_inputs((3, 4, 5, 6), ndim=2)
    xg = x.clone().requires_grad_()
    xr = x.double().requires_grad_()
    wr = m.weight.detach().double().requires_grad_() if m.weight is not None else None
    m(xg).backward(dy)
    torch_rms_norm(xr, (5, 6), wr, 1e-6).backward(dy.double())
    assert_close("y", m(x).detach(), torch_rms_norm(x, (5, 6), wr, 1e-6).detach(), 1e-5, 1e-5)
    assert_close("dx", xg.grad, xr.grad, 1e-5, 1e-5)
    if m.weight is not None:
        assert_close("dweight", m.weight.grad, wr.grad, 1e-5, 1e-5)


def test_module_state_dict_repr_dtype():
    m = tn.nn.RMSNorm(12, dtype=torch.bfloat16, backend="reference")
    assert m.weight.dtype == torch.bfloat16
    assert list(m.state_dict()) == ["weight"]
    m2 = tn.nn.RMSNorm(12, eps=1e-3)
    m2.load_state_dict({"weight": torch.full((12,), 2.0)})
    assert torch.equal(m2.weight.detach(), torch.full((12,), 2.0))
    assert repr(m) == "RMSNorm((12,), eps=None, elementwise_affine=True, backend=reference)"


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"normalized_shape \[4\] does not match"):
        tn.rms_norm(torch.ones(2, 8), 4)
    with pytest.raises(ValueError, match=r"weight has shape \[7\], expected normalized_shape \[8\]"):
        tn.rms_norm(torch.ones(2, 8), 8, torch.ones(7))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64; backend 'tile'"):
        tn.rms_norm(torch.ones(2, 8, dtype=torch.float64), 8, backend="tile")
    with pytest.raises(ValueError, match=r"eps"):
        tn.rms_norm(torch.ones(2, 8), 8, eps=-1.0)
