"""tilenorm's LayerNorm and RMSNorm as PyTorch autograd ops, and the drop-in modules
tilenorm.torch.nn.LayerNorm and tilenorm.torch.nn.RMSNorm.

Semantics, dtypes, devices and backends: docs/pytorch.md.
"""
import functools
import math
import numbers

import torch
from torch.autograd.function import once_differentiable

from tilenorm import _C
from tilenorm.torch import _library

BACKENDS = ("cpu", "cuda", "tile", "reference")

# The dtypes each backend takes (x, weight and bias share one).
_DTYPES = {
    "cpu": (torch.float32, torch.bfloat16),
    "tile": (torch.float32, torch.bfloat16),
    "reference": (torch.float32, torch.bfloat16, torch.float64),
    "cuda": (torch.float32, torch.bfloat16, torch.float16),
}


@functools.lru_cache(maxsize=None)
def _unavailable(backend):
    return _C.backend_unavailable(backend)


def _normalized_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(d) for d in normalized_shape)


def _check(x, normalized_shape, weight, bias, backend):
    """Raises a TypeError/ValueError/RuntimeError naming the offending argument; returns the
    backend to use."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if backend is None:
        backend = "cuda" if x.device.type == "cuda" else "cpu"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    why = _unavailable(backend)
    if why:
        raise RuntimeError(f"tilenorm: {why}")
    device_type = "cuda" if backend == "cuda" else "cpu"
    if x.device.type != device_type:
        raise ValueError(
            f"x is on device {x.device}, but backend '{backend}' runs on {device_type} tensors")
    if x.dtype not in _DTYPES[backend]:
        takes = ", ".join(str(d) for d in _DTYPES[backend])
        raise TypeError(f"x has dtype {x.dtype}; backend '{backend}' takes {takes}")
    n = len(normalized_shape)
    if n == 0 or x.dim() < n or tuple(x.shape[x.dim() - n:]) != normalized_shape:
        raise ValueError(f"normalized_shape {list(normalized_shape)} does not match the last "
                         f"dims of x (shape {list(x.shape)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        if t.device != x.device:
            raise ValueError(f"{name} is on device {t.device}, x on {x.device}")
        if t.dtype != x.dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, expected x's dtype {x.dtype}")
        if tuple(t.shape) != normalized_shape:
            raise ValueError(f"{name} has shape {list(t.shape)}, expected normalized_shape "
                             f"{list(normalized_shape)}")
    return backend


def _call(kernel, norm, backend, num_threads, x, *tensors):
    """Runs a _C kernel; CUDA kernels go on the current stream of x's device, asynchronously."""
    if backend != "cuda":
        return kernel(norm, backend, x, *tensors, num_threads, -1, 0)
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        return kernel(norm, backend, x, *tensors, num_threads, x.device.index, stream)


def _stat_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _gamma(weight, x, C):
    if weight is None:
        return torch.ones(C, dtype=x.dtype, device=x.device)
    return weight.contiguous().view(C)


def _rows(x, normalized_shape):
    return math.prod(x.shape[:x.dim() - len(normalized_shape)])


def _check_backward(dy, x, normalized_shape, stats):
    """The backward op's own arguments (the forward's are checked by _check); stats: name ->
    tensor of the per-row statistics."""
    rows = _rows(x, normalized_shape)
    expected = [("dy", dy, tuple(x.shape), x.dtype)]
    expected += [(name, t, (rows,), _stat_dtype(x.dtype)) for name, t in stats.items()]
    for name, t, shape, dtype in expected:
        if t.device != x.device:
            raise ValueError(f"{name} is on device {t.device}, x on {x.device}")
        if t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, expected {dtype}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {list(t.shape)}, expected {list(shape)}")


def _forward(norm, x, normalized_shape, weight, bias, eps, backend, num_threads):
    """The forward kernel of either norm: (y, mean, rstd); mean is None for "rmsnorm"."""
    normalized_shape = tuple(normalized_shape)
    _check(x, normalized_shape, weight, bias, backend)
    C = math.prod(normalized_shape)
    x2 = x.contiguous().view(-1, C)
    rows = x2.shape[0]
    beta = bias.contiguous().view(C) if bias is not None else None
    y = torch.empty_like(x2)
    rstd = torch.empty(rows, dtype=_stat_dtype(x.dtype), device=x.device)
    mean = torch.empty_like(rstd) if norm == "layernorm" else None
    if rows > 0:
        _call(_C.norm_forward, norm, backend, num_threads, x2, _gamma(weight, x, C), beta,
              float(eps), y, mean, rstd)
    return y.view(x.shape), mean, rstd


def _backward(norm, dy, x, normalized_shape, weight, mean, rstd, backend, num_threads):
    """The backward kernel of either norm: (dx, dweight, dbias); dbias is None for "rmsnorm"."""
    normalized_shape = tuple(normalized_shape)
    _check(x, normalized_shape, weight, None, backend)
    stats = {"mean": mean, "rstd": rstd} if norm == "layernorm" else {"rrms": rstd}
    _check_backward(dy, x, normalized_shape, stats)
    C = math.prod(normalized_shape)
    x2 = x.contiguous().view(-1, C)
    dx = torch.empty_like(x2)
    dgamma = torch.zeros(C, dtype=rstd.dtype, device=x.device)
    dbeta = torch.zeros_like(dgamma) if norm == "layernorm" else None
    if x2.shape[0] > 0:
        _call(_C.norm_backward, norm, backend, num_threads, x2, dy.contiguous().view(x2.shape),
              _gamma(weight, x, C), None if mean is None else mean.contiguous(), rstd.contiguous(),
              dx, dgamma, dbeta)
    dbias = None if dbeta is None else dbeta.view(normalized_shape).to(x.dtype)
    return dx.view(x.shape), dgamma.view(normalized_shape).to(x.dtype), dbias


def _layernorm_forward(x, normalized_shape, weight, bias, eps, backend, num_threads):
    return _forward("layernorm", x, normalized_shape, weight, bias, eps, backend, num_threads)


def _layernorm_forward_fake(x, normalized_shape, weight, bias, eps, backend, num_threads):
    mean = x.new_empty((_rows(x, normalized_shape),), dtype=_stat_dtype(x.dtype))
    return x.new_empty(x.shape), mean, torch.empty_like(mean)


def _layernorm_backward(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads):
    return _backward("layernorm", dy, x, normalized_shape, weight, mean, rstd, backend,
                     num_threads)


def _layernorm_backward_fake(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads):
    return x.new_empty(x.shape), x.new_empty(normalized_shape), x.new_empty(normalized_shape)


def _rmsnorm_forward(x, normalized_shape, weight, eps, backend, num_threads):
    y, _, rrms = _forward("rmsnorm", x, normalized_shape, weight, None, eps, backend, num_threads)
    return y, rrms


def _rmsnorm_forward_fake(x, normalized_shape, weight, eps, backend, num_threads):
    rrms = x.new_empty((_rows(x, normalized_shape),), dtype=_stat_dtype(x.dtype))
    return x.new_empty(x.shape), rrms


def _rmsnorm_backward(dy, x, normalized_shape, weight, rrms, backend, num_threads):
    dx, dweight, _ = _backward("rmsnorm", dy, x, normalized_shape, weight, None, rrms, backend,
                               num_threads)
    return dx, dweight


def _rmsnorm_backward_fake(dy, x, normalized_shape, weight, rrms, backend, num_threads):
    return x.new_empty(x.shape), x.new_empty(normalized_shape)


# torch.ops.tilenorm.<norm>_forward / <norm>_backward: the kernels without autograd. The
# statistics are per row of x flattened to [rows, C]; dweight and dbias have x's dtype.
layernorm_forward = _library.define(
    "layernorm_forward(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, "
    "str backend, int num_threads) -> (Tensor y, Tensor mean, Tensor rstd)",
    _layernorm_forward, _layernorm_forward_fake)
layernorm_backward = _library.define(
    "layernorm_backward(Tensor dy, Tensor x, int[] normalized_shape, Tensor? weight, Tensor mean, "
    "Tensor rstd, str backend, int num_threads) -> (Tensor dx, Tensor dweight, Tensor dbias)",
    _layernorm_backward, _layernorm_backward_fake)
rmsnorm_forward = _library.define(
    "rmsnorm_forward(Tensor x, int[] normalized_shape, Tensor? weight, float eps, str backend, "
    "int num_threads) -> (Tensor y, Tensor rrms)",
    _rmsnorm_forward, _rmsnorm_forward_fake)
rmsnorm_backward = _library.define(
    "rmsnorm_backward(Tensor dy, Tensor x, int[] normalized_shape, Tensor? weight, Tensor rrms, "
    "str backend, int num_threads) -> (Tensor dx, Tensor dweight)",
    _rmsnorm_backward, _rmsnorm_backward_fake)


class NormFunction(torch.autograd.Function):
    """One autograd op for both norms: forward runs tilenorm::<norm>_forward and saves x (made
    contiguous once), weight and the statistics (mean and rstd; rrms alone for "rmsnorm");
    backward runs tilenorm::<norm>_backward on them. layer_norm() / rms_norm() check the
    arguments (and the ops again: they can be called directly)."""

    @staticmethod
    def forward(ctx, norm, x, weight, bias, normalized_shape, eps, backend, num_threads):
        x = x.contiguous()
        if norm == "layernorm":
            y, mean, rstd = layernorm_forward(x, normalized_shape, weight, bias, eps, backend,
                                              num_threads)
            ctx.save_for_backward(x, weight, mean, rstd)
        else:
            y, rrms = rmsnorm_forward(x, normalized_shape, weight, eps, backend, num_threads)
            ctx.save_for_backward(x, weight, rrms)
        ctx.norm, ctx.normalized_shape = norm, normalized_shape
        ctx.backend, ctx.num_threads = backend, num_threads
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        args = (ctx.normalized_shape, *ctx.saved_tensors[1:], ctx.backend, ctx.num_threads)
        x = ctx.saved_tensors[0]
        if ctx.norm == "layernorm":
            dx, dweight, dbias = layernorm_backward(dy, x, *args)
        else:
            (dx, dweight), dbias = rmsnorm_backward(dy, x, *args), None
        grad = ctx.needs_input_grad
        return (None, dx, dweight if grad[2] else None, dbias if grad[3] else None, None, None,
                None, None)


def _apply(norm, x, normalized_shape, weight, bias, eps, backend, num_threads):
    normalized_shape = _normalized_shape(normalized_shape)
    backend = _check(x, normalized_shape, weight, bias, backend)
    if num_threads is None:
        num_threads = torch.get_num_threads()
    return NormFunction.apply(norm, x, weight, bias, normalized_shape, float(eps), backend,
                              int(num_threads))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, backend=None,
               num_threads=None):
    """torch.nn.functional.layer_norm on a tilenorm backend, differentiable in x, weight, bias.

    backend: "cpu" (default for CPU tensors), "cuda" (default for CUDA tensors), "tile" (the
    emulated tile device; slow), "reference" (float64 loops; also takes float64 tensors).
    num_threads: worker threads of the cpu backend; None = torch.get_num_threads().
    """
    return _apply("layernorm", x, normalized_shape, weight, bias, eps, backend, num_threads)


def rms_norm(x, normalized_shape, weight=None, eps=None, *, backend=None, num_threads=None):
    """torch.nn.functional.rms_norm (newer torch) on a tilenorm backend, differentiable in x and
    weight: y = x / sqrt(mean(x^2) + eps) * weight over the normalized dims.

    eps=None is torch's default: the machine epsilon of the compute dtype (float32's, 2^-23, for
    float32 and bfloat16 data; float64's for float64). backend, num_threads: as layer_norm.
    """
    if eps is None and isinstance(x, torch.Tensor):
        eps = torch.finfo(torch.float64 if x.dtype == torch.float64 else torch.float32).eps
    return _apply("rmsnorm", x, normalized_shape, weight, None, eps, backend, num_threads)


from tilenorm.torch import nn  # noqa: E402  (nn uses layer_norm)

__all__ = ["BACKENDS", "NormFunction", "layer_norm", "layernorm_backward", "layernorm_forward",
           "nn", "rms_norm", "rmsnorm_backward", "rmsnorm_forward"]
