"""The dispatcher ops torch.ops.tilenorm.layernorm_forward / layernorm_backward: registered,
bitwise what the autograd path returns, the ops that path runs, and their shapes on meta
tensors."""
import pytest
import torch
from torch.profiler import profile

import tilenorm.torch as tn
from test_layernorm import make_inputs, run

ops = torch.ops.tilenorm


def test_ops_are_registered():
    assert ops.layernorm_forward.default is tn.layernorm_forward
    assert ops.layernorm_backward.default is tn.layernorm_backward
    schema = str(ops.layernorm_forward.default._schema)
    assert schema.startswith("tilenorm::layernorm_forward(Tensor x, int[] normalized_shape, "
                             "Tensor? weight, Tensor? bias, float eps, str backend")


@pytest.mark.parametrize("backend,dtype", [("cpu", torch.float32), ("cpu", torch.bfloat16),
                                           ("reference", torch.float64), ("tile", torch.float32)])
@pytest.mark.parametrize("affine", [True, False])
def test_direct_calls_equal_autograd_bitwise(backend, dtype, affine):
    x, dy, w, b = make_inputs((3, 5, 40), dtype=dtype)
    w, b = (w, b) if affine else (None, None)
    y, dx, dw, db = run(tn.layer_norm, x, dy, w, b, (40,), backend=backend, num_threads=2)
    y2, mean, rstd = ops.layernorm_forward(x, [40], w, b, 1e-5, backend, 2)
    dx2, dw2, db2 = ops.layernorm_backward(dy, x, [40], w, mean, rstd, backend, 2)
    assert mean.shape == rstd.shape == (15,)
    assert torch.equal(y, y2) and torch.equal(dx, dx2)
    if affine:
        assert torch.equal(dw, dw2) and torch.equal(db, db2)
    else:
        assert dw is None and db is None


def op_names(events):
    return [e.name for e in events if e.name.startswith("tilenorm::")]


def test_autograd_runs_one_op_per_direction():
    x, dy, w, b = make_inputs((4, 33))
    x.requires_grad_()
    with profile() as forward:
        y = tn.nn.LayerNorm(33)(x)
    with profile() as backward:
        y.backward(dy)
    assert op_names(forward.events()) == ["tilenorm::layernorm_forward"]
    assert op_names(backward.events()) == ["tilenorm::layernorm_backward"]


@pytest.mark.parametrize("dtype,stat", [(torch.float32, torch.float32),
                                        (torch.bfloat16, torch.float32),
                                        (torch.float64, torch.float64)])
def test_meta_shapes_and_dtypes(dtype, stat):
    x = torch.empty(2, 3, 4, 5, device="meta", dtype=dtype, requires_grad=True)
    w = torch.empty(4, 5, device="meta", dtype=dtype)
    y, mean, rstd = ops.layernorm_forward(x, [4, 5], w, None, 1e-5, "cpu", 1)
    assert [(t.device.type, t.shape, t.dtype) for t in (y, mean, rstd)] == [
        ("meta", (2, 3, 4, 5), dtype), ("meta", (6,), stat), ("meta", (6,), stat)]
    dx, dw, db = ops.layernorm_backward(y, x, [4, 5], w, mean, rstd, "cpu", 1)
    assert [(t.device.type, t.shape, t.dtype) for t in (dx, dw, db)] == [
        ("meta", (2, 3, 4, 5), dtype), ("meta", (4, 5), dtype), ("meta", (4, 5), dtype)]


def test_direct_calls_check_their_arguments():
    x = torch.ones(6, 8)
    y, mean, rstd = ops.layernorm_forward(x, [8], None, None, 1e-5, "cpu", 1)
    with pytest.raises(TypeError, match=r"x has dtype torch.float16; backend 'cpu'"):
        ops.layernorm_forward(x.half(), [8], None, None, 1e-5, "cpu", 1)
    with pytest.raises(ValueError, match=r"weight has shape \[7\], expected normalized_shape"):
        ops.layernorm_forward(x, [8], torch.ones(7), None, 1e-5, "cpu", 1)
    with pytest.raises(ValueError, match=r"mean has shape \[5\], expected \[6\]"):
        ops.layernorm_backward(y, x, [8], None, mean[:5], rstd, "cpu", 1)
    with pytest.raises(TypeError, match=r"rstd has dtype torch.float64, expected torch.float32"):
        ops.layernorm_backward(y, x, [8], None, mean, rstd.double(), "cpu", 1)
    with pytest.raises(ValueError, match=r"dy has shape \[6, 4\], expected \[6, 8\]"):
        ops.layernorm_backward(y[:, :4], x, [8], None, mean, rstd, "cpu", 1)
