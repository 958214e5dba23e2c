"""The fused residual add from Python: layer_norm / rms_norm(..., residual=r) return (y, h) with
h = x + r, against torch's norm(x + r), with gradients through both outputs; the modules'
forward(x, residual); a pre-norm block written with the fused add against the unfused one."""
import pytest
import torch
import torch.nn.functional as F

import tilenorm.torch as tn
from test_layernorm import assert_close, make_inputs
from test_rmsnorm import torch_rms_norm

# (dtype, backend, atol, rtol): f64 is computed in f64 throughout; bf16 as test_layernorm's TOL
# (h = x + r is rounded to bf16 before it is normalized, in both).
CASES = [(torch.float64, "cpu", 1e-12, 1e-12), (torch.float64, "reference", 1e-12, 1e-12),
         (torch.bfloat16, "cpu", 1e-2, 8e-3), (torch.float32, "cpu", 1e-5, 1e-5)]
IDS = ["f64-cpu", "f64-reference", "bf16-cpu", "f32-cpu"]


def torch_norm(norm, x, ns, w, b, eps):
    if norm == "layernorm":
        return F.layer_norm(x, ns, w, b, eps)
    return torch_rms_norm(x, ns, w, eps)


def tn_norm(norm, x, ns, w, b, eps, **kw):
    if norm == "layernorm":
        return tn.layer_norm(x, ns, w, b, eps, **kw)
    return tn.rms_norm(x, ns, w, eps, **kw)


@pytest.mark.parametrize("dtype,backend,atol,rtol", CASES, ids=IDS)
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_fused_add_matches_torch(dtype, backend, atol, rtol, norm):
    x, dy, w, b = make_inputs((2, 7, 80), dtype=dtype)
    r, dh, _, _ = make_inputs((2, 7, 80), dtype=dtype, seed=1)
    leaves = [t.detach().clone().requires_grad_() for t in (x, r, w, b)]
    y, h = tn_norm(norm, leaves[0], (80,), leaves[2], leaves[3], 1e-5,
                   residual=leaves[1], backend=backend)
    assert y.dtype == h.dtype == dtype
    ((y * dy).sum() + (h * dh).sum()).backward()
    # torch in float64 on h = x + r rounded to the dtype, as tilenorm's h is (the rounding is
    # added as a constant, so that d h / d x = d h / d r = 1 as in tilenorm's)
    ref_leaves = [t.detach().double().requires_grad_() for t in (x, r, w, b)]
    exact = ref_leaves[0] + ref_leaves[1]
    h_ref = exact + (exact.detach().to(dtype).double() - exact.detach())
    y_ref = torch_norm(norm, h_ref, (80,), ref_leaves[2], ref_leaves[3], 1e-5)
    ((y_ref * dy.double()).sum() + (h_ref * dh.double()).sum()).backward()
    assert torch.equal(h.detach(), (x + r)), "h is x + residual in the dtype"
    assert_close("y", y.detach(), y_ref.detach(), atol, rtol)
    assert_close("dx", leaves[0].grad, ref_leaves[0].grad, atol, rtol)
    assert_close("dresidual", leaves[1].grad, ref_leaves[1].grad, atol, rtol)
    assert_close("dweight", leaves[2].grad, ref_leaves[2].grad, atol, rtol)
    if norm == "layernorm":
        assert_close("dbias", leaves[3].grad, ref_leaves[3].grad, atol, rtol)
    else:
        assert leaves[3].grad is None


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_only_h_used(norm):
    """When only h feeds the loss, dh passes to x and residual unchanged."""
    x, dh, w, b = make_inputs((5, 24))
    xr, rr = x.clone().requires_grad_(), (x * 0.5).requires_grad_()
    _, h = tn_norm(norm, xr, (24,), w, b, 1e-5, residual=rr)
    h.backward(dh)
    assert torch.equal(xr.grad, dh) and torch.equal(rr.grad, dh)


def test_residual_errors_name_it():
    x = torch.ones(2, 8)
    with pytest.raises(ValueError, match=r"residual has shape \[2, 4\], expected x's shape"):
        tn.layer_norm(x, 8, residual=torch.ones(2, 4))
    with pytest.raises(TypeError, match=r"residual has dtype torch.bfloat16"):
        tn.rms_norm(x, 8, residual=torch.ones(2, 8, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match=r"residual must be a torch.Tensor or None, got list"):
        tn.layer_norm(x, 8, residual=[1.0])


class Block(torch.nn.Module):
    """Pre-norm MLP block; fused: the norm takes the residual stream and returns it updated."""

    def __init__(self, norm, dim, fused):
        super().__init__()
        self.norm, self.fused = norm, fused
        self.fc1 = torch.nn.Linear(dim, 2 * dim, dtype=torch.float64)
        self.fc2 = torch.nn.Linear(2 * dim, dim, dtype=torch.float64)

    def forward(self, hidden, residual):
        if self.fused:
            y, residual = self.norm(hidden, residual) if residual is not None else (
                self.norm(hidden), hidden)
        else:
            residual = hidden if residual is None else hidden + residual
            y = self.norm(residual)
        return self.fc2(torch.relu(self.fc1(y))), residual


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
def test_pre_norm_stack_fused_equals_unfused(kind):
    """Three pre-norm blocks and a final norm, with tilenorm's fused add against torch's
    unfused x + r then norm, in float64: the loss and every parameter's gradient."""
    torch.manual_seed(0)

    def make(fused):
        torch.manual_seed(0)
        if kind == "layernorm":
            mk = (lambda: tn.nn.LayerNorm(32, dtype=torch.float64)) if fused \
                else (lambda: torch.nn.LayerNorm(32, dtype=torch.float64))
        else:
            mk = (lambda: tn.nn.RMSNorm(32, eps=1e-6, dtype=torch.float64)) if fused \
                else (lambda: TorchRMSNorm(32))
        blocks = torch.nn.ModuleList([Block(mk(), 32, fused) for _ in range(3)])
        final = mk()
        for p in list(blocks.parameters()) + list(final.parameters()):
            with torch.no_grad():
                p.add_(torch.randn_like(p) * 0.1)
        return blocks, final

    x = torch.randn(6, 32, dtype=torch.float64)
    results = []
    for fused in (True, False):
        blocks, final = make(fused)
        hidden, residual = x, None
        for blk in blocks:
            hidden, residual = blk(hidden, residual)
        out = final(hidden, residual)[0] if fused else final(hidden + residual)
        loss = out.pow(2).mean()
        loss.backward()
        params = list(blocks.parameters()) + list(final.parameters())
        results.append((loss.item(), [p.grad for p in params]))
    (l1, g1), (l2, g2) = results
    assert abs(l1 - l2) <= 1e-12 * abs(l2)
    for a, b in zip(g1, g2):
        assert_close("grad", a, b, 1e-11, 1e-11)


class TorchRMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim, dtype=torch.float64))

    def forward(self, x):
        return torch_rms_norm(x, (x.shape[-1],), self.weight, 1e-6)
