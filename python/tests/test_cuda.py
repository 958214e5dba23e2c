"""The cuda backend on CUDA tensors (skipped without a CUDA device in torch): LayerNorm and RMSNorm
forward and backward against torch in float64, fp16 included, and the kernels queued on the
current stream."""
import pytest
import torch
import torch.nn.functional as F

import tilenorm.torch as tn
from test_layernorm import assert_close, make_inputs, run
from test_rmsnorm import run as run_rms, torch_rms_norm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device in torch")

# The registry's levels for the cuda backend: f32 as the cpu's; bf16 and fp16 outputs rounded
# once (fp16's step is finer than bf16's: bf16's levels cover it).
TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1e-2, 8e-3), torch.float16: (1e-2, 8e-3)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(19, 213), (2, 3, 100), (3, 8462)])
def test_cuda_matches_torch(shape, dtype):
    if tn._unavailable("cuda"):
        pytest.skip(tn._unavailable("cuda"))
    x, dy, w, b = make_inputs(shape, dtype=dtype)
    got = run(tn.layer_norm, *(t.cuda() for t in (x, dy, w, b)), shape[-1:])
    ref = run(F.layer_norm, x.double(), dy.double(), w.double(), b.double(), shape[-1:])
    for name, g, r in zip(("y", "dx", "dweight", "dbias"), got, ref):
        assert g.device.type == "cuda" and g.dtype == dtype
        assert_close(name, g.cpu(), r, *TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(19, 213), (2, 3, 100), (3, 8462), (2, 70000)])
def test_cuda_rms_norm_matches_torch(shape, dtype):
    """Rows in registers, over a cluster (8462) and split (70000)."""
    if tn._unavailable("cuda"):
        pytest.skip(tn._unavailable("cuda"))
    x, dy, w, _ = make_inputs(shape, dtype=dtype)
    got = run_rms(tn.rms_norm, *(t.cuda() for t in (x, dy, w)), shape[-1:], 1e-5)
    ref = run_rms(torch_rms_norm, x.double(), dy.double(), w.double(), shape[-1:], 1e-5)
    for name, g, r in zip(("y", "dx", "dweight"), got, ref):
        assert g.device.type == "cuda" and g.dtype == dtype
        assert_close(name, g.cpu(), r, *TOL[dtype])


def test_cuda_runs_on_the_current_stream():
    if tn._unavailable("cuda"):
        pytest.skip(tn._unavailable("cuda"))
    x, dy, w, b = (t.cuda() for t in make_inputs((64, 4096)))
    want = F.layer_norm(x.double(), (4096,), w.double(), b.double())
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = tn.layer_norm(x, 4096, w, b)
    stream.synchronize()
    assert_close("y", y.cpu(), want.cpu(), 1e-5, 1e-5)


def test_cuda_rms_norm_runs_on_the_current_stream():
    if tn._unavailable("cuda"):
        pytest.skip(tn._unavailable("cuda"))
    x, _, w, _ = (t.cuda() for t in make_inputs((64, 4096)))
    want = torch_rms_norm(x, (4096,), w, 1e-5)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = tn.rms_norm(x, 4096, w, 1e-5)
    stream.synchronize()
    assert_close("y", y.cpu(), want.cpu(), 1e-5, 1e-5)
