"""tilenorm.torch.layer_norm and tilenorm.torch.nn.LayerNorm, forward and backward, against
torch.nn.functional.layer_norm on CPU."""
import pytest
import torch
import torch.nn.functional as F

import tilenorm.torch as tn

# Tolerances: |got - ref| <= atol * max(1, max|ref|) + rtol * |ref| per element (the compare rule
# of `tilenorm verify`), ref = torch's result in float64 on the same (dtype-rounded) inputs: torch
# in f32 is itself a few ulps off, and at C = 1 (rstd = 1/sqrt(eps)) it is off by 2e-5.
#   f32 (cpu, reference): f32 arithmetic (reference: f64, then rounded): a few ulps.
#   bf16 (cpu, reference): y and dx are rounded to
#     bf16 (relative step 2^-8): the registry's cpu bf16 levels. dweight/dbias are summed in f32
#     by tilenorm and then rounded to bf16 for the bf16 parameters: the same levels.
#   tile f32: the registry's tile f32 levels: y and dx inherit the fp32 mean's error (~2 ulp, from
#     the rounded 1/C) times rstd, which is 1/sqrt(eps) = 316 where the variance is 0 (C = 1):
#     measured 3e-4 there.
#   tile bf16: the registry's tile bf16 levels (inputs travel as bf16 tiles).
TOL = {
    ("f32", "cpu"): (1e-5, 1e-5), ("f32", "reference"): (1e-5, 1e-5),
    ("f32", "tile"): (5e-3, 1e-5),
    ("bf16", "cpu"): (1e-2, 8e-3), ("bf16", "reference"): (1e-2, 8e-3),
    ("bf16", "tile"): (2e-2, 1e-2),
}
TILE_DPARAMS_BF16 = (5e-2, 1e-2)
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def assert_close(name, got, ref, atol, rtol):
    got, ref = got.double(), ref.double()
    assert got.shape == ref.shape, f"{name}: shape {list(got.shape)} != {list(ref.shape)}"
    scale = max(1.0, ref.abs().max().item()) if ref.numel() else 1.0
    err = (got - ref).abs()
    bound = atol * scale + rtol * ref.abs()
    if not bool((err <= bound).all()):
        i = int((err - bound).argmax())
        pytest.fail(f"{name}: max|err| {err.max().item():.3g}, worst [{i}] got "
                    f"{got.flatten()[i].item():.9g} ref {ref.flatten()[i].item():.9g}")


def make_inputs(shape, ndim=1, dtype=torch.float32, seed=0):
    """x with a mean and scale that differ along the first dim (so errors in the statistics
    show), dy, weight and bias random with non-zero means."""
    g = torch.Generator().manual_seed(seed)
    lead = [-1] + [1] * (len(shape) - 1)
    r = torch.arange(shape[0], dtype=torch.float64).view(lead)
    x = 2 + r % 7 + torch.randn(shape, generator=g, dtype=torch.float64) * (1 + r % 3)
    dy = torch.rand(shape, generator=g, dtype=torch.float64) * 1.5 - 0.5
    ns = shape[len(shape) - ndim:]
    weight = torch.rand(ns, generator=g, dtype=torch.float64) * 0.5 + 0.75
    bias = torch.rand(ns, generator=g, dtype=torch.float64) * 0.2 - 0.1
    return [t.to(dtype) for t in (x, dy, weight, bias)]


def run(fn, x, dy, weight, bias, ns, eps=1e-5, **kw):
    """y and the gradients of x, weight, bias (None where not given) after y.backward(dy)."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None
              for t in (x, weight, bias)]
    y = fn(leaves[0], ns, leaves[1], leaves[2], eps, **kw)
    y.backward(dy)
    return [y.detach()] + [t.grad if t is not None else None for t in leaves]


# (shape, why): C < 32, C % 32 != 0, a rank-3 input, the report's C = 8462, C = 1.
SHAPES = [
    ((13, 20), "one partial tile: C = 20"),
    ((32, 33), "C = 33: one element into a second tile"),
    ((19, 213), "C % 32 = 21"),
    ((2, 3, 100), "rank 3: leading dims flattened"),
    ((3, 8462), "the report's C = 8462"),
    ((5, 1), "C = 1: variance 0, y = bias"),
]
TILE_SHAPES = [s for s in SHAPES if s[0][-1] <= 213]


def check_against_torch(shape, dtype_name, backend):
    dtype = DTYPES[dtype_name]
    x, dy, w, b = make_inputs(shape, dtype=dtype)
    got = run(tn.layer_norm, x, dy, w, b, shape[-1:], backend=backend)
    ref = run(F.layer_norm, x.double(), dy.double(), w.double(), b.double(), shape[-1:])
    atol, rtol = TOL[(dtype_name, backend)]
    for name, g, r in zip(("y", "dx"), got[:2], ref[:2]):
        assert g.dtype == dtype
        assert_close(name, g, r, atol, rtol)
    if (dtype_name, backend) == ("bf16", "tile"):
        atol, rtol = TILE_DPARAMS_BF16
    for name, g, r in zip(("dweight", "dbias"), got[2:], ref[2:]):
        assert g.dtype == dtype
        assert_close(name, g, r, atol, rtol)


@pytest.mark.parametrize("shape", [s for s, _ in SHAPES], ids=[w for _, w in SHAPES])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_matches_torch(shape, dtype, backend):
    check_against_torch(shape, dtype, backend)


@pytest.mark.parametrize("shape", [s for s, _ in TILE_SHAPES], ids=[w for _, w in TILE_SHAPES])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_tile_matches_torch(shape, dtype):
    check_against_torch(shape, dtype, "tile")


@pytest.mark.parametrize("backend,shape", [
    ("cpu", (100, 8192)), ("cpu", (3, 273, 8462)), ("reference", (3, 273, 8462)),
    ("tile", (4, 2048))])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_report_constant_inputs(backend, shape, dtype):
    """The bug report's inputs: x = 0.5, dy = 1, weight = 1, bias = 0, eps = 1e-6. xhat is 0, so
    y = 0, dx = 0 and dweight = 0 exactly, and dbias = the number of rows exactly (rounded to the
    dtype: 819 rows is 820 in bf16)."""
    dtype = DTYPES[dtype]
    C, rows = shape[-1], torch.Size(shape[:-1]).numel()
    x = torch.full(shape, 0.5, dtype=dtype)
    ones, zeros = torch.ones(C, dtype=dtype), torch.zeros(C, dtype=dtype)
    y, dx, dw, db = run(tn.layer_norm, x, torch.ones_like(x), ones, zeros, (C,), eps=1e-6,
                        backend=backend)
    assert torch.equal(y, torch.zeros_like(x))
    assert torch.equal(dx, torch.zeros_like(x))
    assert torch.equal(dw, zeros)
    assert torch.equal(db, torch.full((C,), float(rows)).to(dtype))


def test_gradcheck_reference_f64():
    """Finite differences in float64 through the reference backend, with a 2-dim normalized
    shape, with and without the affine parameters."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 2, 7, generator=g, dtype=torch.float64) + 1).requires_grad_()
    w = (torch.rand(2, 7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(2, 7, generator=g, dtype=torch.float64).requires_grad_()

    def f(x, w, b):
        return tn.layer_norm(x, (2, 7), w, b, backend="reference")

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradcheck(lambda x: tn.layer_norm(x, 7, backend="reference"), (x,))


def test_multi_dim_normalized_shape():
    x, dy, w, b = make_inputs((4, 3, 5, 6), ndim=2)
    got = run(tn.layer_norm, x, dy, w, b, (5, 6))
    ref = run(F.layer_norm, x, dy, w, b, (5, 6))
    for name, g, r in zip(("y", "dx", "dweight", "dbias"), got, ref):
        assert_close(name, g, r, 1e-5, 1e-5)


def test_non_contiguous_input():
    x, dy, w, b = make_inputs((40, 6))
    x, dy = x.t(), dy.t()  # [6, 40], strided
    assert not x.is_contiguous()
    got = run(tn.layer_norm, x, dy, w[:1].expand(40).clone(), b[:1].expand(40).clone(), (40,))
    ref = run(F.layer_norm, x, dy, w[:1].expand(40).clone(), b[:1].expand(40).clone(), (40,))
    for name, g, r in zip(("y", "dx", "dweight", "dbias"), got, ref):
        assert_close(name, g, r, 1e-5, 1e-5)


def test_without_weight_or_bias():
    x, dy, w, _ = make_inputs((8, 50))
    for weight in (None, w):
        got = run(tn.layer_norm, x, dy, weight, None, (50,))
        ref = run(F.layer_norm, x, dy, weight, None, (50,))
        for name, g, r in zip(("y", "dx", "dweight"), got, ref):
            if r is None:
                assert g is None
            else:
                assert_close(name, g, r, 1e-5, 1e-5)


def test_empty_batch():
    x = torch.zeros(0, 16, requires_grad=True)
    m = tn.nn.LayerNorm(16)
    y = m(x)
    assert y.shape == (0, 16)
    y.sum().backward()
    assert x.grad.shape == (0, 16)
    assert torch.equal(m.weight.grad, torch.zeros(16))


def test_bitwise_equal_across_thread_counts():
    x, dy, w, b = make_inputs((64, 1000))
    one = run(tn.layer_norm, x, dy, w, b, (1000,), num_threads=1)
    two = run(tn.layer_norm, x, dy, w, b, (1000,), num_threads=2)
    for g1, g2 in zip(one, two):
        assert torch.equal(g1, g2)


@pytest.mark.parametrize("elementwise_affine,bias", [(True, True), (True, False), (False, True)])
def test_module_matches_torch(elementwise_affine, bias):
    torch.manual_seed(0)
    m = tn.nn.LayerNorm((5, 6), eps=1e-6, elementwise_affine=elementwise_affine, bias=bias)
    ref = torch.nn.LayerNorm((5, 6), eps=1e-6, elementwise_affine=elementwise_affine)
    assert isinstance(m, torch.nn.LayerNorm)
    assert (m.weight is None) == (not elementwise_affine)
    assert (m.bias is None) == (not (elementwise_affine and bias))
    if m.weight is not None:
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            ref.weight.copy_(m.weight)
    if not bias and ref.bias is not None:
        ref.bias = None
    x, dy, _, _ = make_inputs((3, 4, 5, 6), ndim=2)
    xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    m(xg).backward(dy)
    ref(xr).backward(dy)
    assert_close("y", m(x).detach(), ref(x).detach(), 1e-5, 1e-5)
    assert_close("dx", xg.grad, xr.grad, 1e-5, 1e-5)
    for name in ("weight", "bias"):
        p, q = getattr(m, name), getattr(ref, name)
        if p is not None:
            assert_close(f"d{name}", p.grad, q.grad, 1e-5, 1e-5)


def test_state_dict_loads_either_way():
    ref = torch.nn.LayerNorm(12)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    m = tn.nn.LayerNorm(12)
    m.load_state_dict(ref.state_dict())
    back = torch.nn.LayerNorm(12)
    back.load_state_dict(m.state_dict())
    assert torch.equal(back.weight, ref.weight) and torch.equal(back.bias, ref.bias)
    x = torch.randn(3, 12)
    assert_close("y", m(x).detach(), ref(x).detach(), 1e-5, 1e-5)


def test_module_dtype_and_backend():
    m = tn.nn.LayerNorm(64, dtype=torch.bfloat16, backend="reference")
    assert m.weight.dtype == torch.bfloat16
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    assert_close("y", m(x), F.layer_norm(x.float(), (64,)), 1e-2, 8e-3)
    assert "backend=reference" in repr(m)


# Errors: a Python exception naming the argument, never a crash.
def test_error_integer_x():
    with pytest.raises(TypeError, match=r"x has dtype torch.int32"):
        tn.layer_norm(torch.ones(2, 8, dtype=torch.int32), 8)


@pytest.mark.parametrize("backend", ["cpu", "tile"])
def test_error_fp16_on_host_backends(backend):
    with pytest.raises(TypeError, match=rf"x has dtype torch.float16; backend '{backend}'"):
        tn.layer_norm(torch.ones(2, 8, dtype=torch.float16), 8, backend=backend)


def test_error_f64_on_tile():
    with pytest.raises(TypeError, match=r"x has dtype torch.float64; backend 'tile'"):
        tn.layer_norm(torch.ones(2, 8, dtype=torch.float64), 8, backend="tile")


def test_error_wrong_device():
    with pytest.raises(ValueError, match=r"x is on device meta"):
        tn.layer_norm(torch.ones(2, 8, device="meta"), 8)
    with pytest.raises(ValueError, match=r"weight is on device meta"):
        tn.layer_norm(torch.ones(2, 8), 8, torch.ones(8, device="meta"))


def test_error_cuda_backend_on_cpu_tensor():
    # Either this build has no usable CUDA device (RuntimeError saying so) or the tensor is on
    # the wrong device (ValueError); both name the backend.
    with pytest.raises((RuntimeError, ValueError), match=r"backend 'cuda'"):
        tn.layer_norm(torch.ones(2, 8), 8, backend="cuda")


def test_error_weight_shape_and_dtype():
    with pytest.raises(ValueError, match=r"weight has shape \[7\], expected normalized_shape \[8\]"):
        tn.layer_norm(torch.ones(2, 8), 8, torch.ones(7))
    with pytest.raises(ValueError, match=r"bias has shape \[8, 1\]"):
        tn.layer_norm(torch.ones(2, 8), 8, torch.ones(8), torch.ones(8, 1))
    with pytest.raises(TypeError, match=r"weight has dtype torch.bfloat16, expected x's dtype"):
        tn.layer_norm(torch.ones(2, 8), 8, torch.ones(8, dtype=torch.bfloat16))


def test_error_normalized_shape_backend_eps():
    with pytest.raises(ValueError, match=r"normalized_shape \[4\] does not match"):
        tn.layer_norm(torch.ones(2, 8), 4)
    with pytest.raises(ValueError, match=r"backend must be one of .*got 'gpu'"):
        tn.layer_norm(torch.ones(2, 8), 8, backend="gpu")
    with pytest.raises(ValueError, match=r"eps must be finite and > 0, got 0"):
        tn.layer_norm(torch.ones(2, 8), 8, eps=0.0)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor"):
        tn.layer_norm([1.0, 2.0], 2)


def test_error_zero_width_rows():
    with pytest.raises(ValueError, match=r"x has C = 0 \(shape \[2, 0\]\): nothing to normalize"):
        tn.layer_norm(torch.ones(2, 0), 0)
    assert tn.layer_norm(torch.ones(0, 8), 8).shape == (0, 8)  # no rows: nothing to do, as torch


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_without_grad_the_kernels_run_without_the_autograd_op(norm):
    # no_grad and inputs that need no gradient skip the autograd op: the same bits, no graph;
    # with a gradient needed, the graph is there.
    g = torch.Generator().manual_seed(5)
    x, w, r = (torch.randn(s, generator=g) for s in ((3, 5, 40), (40,), (3, 5, 40)))
    fn = tn.layer_norm if norm == "layernorm" else tn.rms_norm
    h64 = x.double() + r.double()
    if norm == "layernorm":
        ref = torch.nn.functional.layer_norm(h64, (40,), w.double())
    else:
        eps = torch.finfo(torch.float32).eps
        ref = h64 * torch.rsqrt(h64.pow(2).mean(-1, keepdim=True) + eps) * w.double()
    xg = x.clone().requires_grad_()
    y_graph, h_graph = fn(xg, (40,), w, residual=r)
    assert y_graph.grad_fn is not None and h_graph.grad_fn is not None
    with torch.no_grad():
        y_nograd, h_nograd = fn(xg, (40,), w, residual=r)
    y_plain, h_plain = fn(x, (40,), w, residual=r)
    for y, h in ((y_nograd, h_nograd), (y_plain, h_plain)):
        assert y.grad_fn is None and not y.requires_grad
        assert torch.equal(y, y_graph.detach()) and torch.equal(h, h_graph.detach())
    assert (y_plain.double() - ref).abs().max() < 1e-5
    assert torch.equal(h_plain, x + r)
