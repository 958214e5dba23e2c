"""tilenorm's LayerNorm as a PyTorch autograd op, and the drop-in module tilenorm.torch.nn.LayerNorm.

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


def _call(kernel, backend, num_threads, x, *tensors):
    """Runs a _C kernel; CUDA kernels go on the current stream of x's device, asynchronously."""
    if backend != "cuda":
        return kernel(backend, x, *tensors, num_threads, -1, 0)
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        return kernel(backend, x, *tensors, num_threads, x.device.index, stream)


def _stat_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _gamma(weight, x, C):
    if weight is None:
        return torch.ones(C, dtype=x.dtype, device=x.device)
    return weight.contiguous().view(C)


def _rows(x, normalized_shape):
    return math.prod(x.shape[:x.dim() - len(normalized_shape)])


def _check_backward(dy, x, normalized_shape, mean, rstd):
    """The backward op's own arguments (the forward's are checked by _check)."""
    rows = _rows(x, normalized_shape)
    for name, t, shape, dtype in (("dy", dy, tuple(x.shape), x.dtype),
                                  ("mean", mean, (rows,), _stat_dtype(x.dtype)),
                                  ("rstd", rstd, (rows,), _stat_dtype(x.dtype))):
        if t.device != x.device:
            raise ValueError(f"{name} is on device {t.device}, x on {x.device}")
        if t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, expected {dtype}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {list(t.shape)}, expected {list(shape)}")


def _layernorm_forward(x, normalized_shape, weight, bias, eps, backend, num_threads):
    normalized_shape = tuple(normalized_shape)
    _check(x, normalized_shape, weight, bias, backend)
    C = math.prod(normalized_shape)
    x2 = x.contiguous().view(-1, C)
    rows = x2.shape[0]
    beta = bias.contiguous().view(C) if bias is not None else None
    y = torch.empty_like(x2)
    mean = torch.empty(rows, dtype=_stat_dtype(x.dtype), device=x.device)
    rstd = torch.empty_like(mean)
    if rows > 0:
        _call(_C.layernorm_forward, backend, num_threads, x2, _gamma(weight, x, C), beta, eps, y,
              mean, rstd)
    return y.view(x.shape), mean, rstd


def _layernorm_forward_fake(x, normalized_shape, weight, bias, eps, backend, num_threads):
    mean = x.new_empty((_rows(x, normalized_shape),), dtype=_stat_dtype(x.dtype))
    return x.new_empty(x.shape), mean, torch.empty_like(mean)


def _layernorm_backward(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads):
    normalized_shape = tuple(normalized_shape)
    _check(x, normalized_shape, weight, None, backend)
    _check_backward(dy, x, normalized_shape, mean, rstd)
    C = math.prod(normalized_shape)
    x2 = x.contiguous().view(-1, C)
    dx = torch.empty_like(x2)
    dgamma = torch.zeros(C, dtype=mean.dtype, device=x.device)
    dbeta = torch.zeros_like(dgamma)
    if x2.shape[0] > 0:
        _call(_C.layernorm_backward, backend, num_threads, x2, dy.contiguous().view(x2.shape),
              _gamma(weight, x, C), mean.contiguous(), rstd.contiguous(), dx, dgamma, dbeta)
    return (dx.view(x.shape), dgamma.view(normalized_shape).to(x.dtype),
            dbeta.view(normalized_shape).to(x.dtype))


def _layernorm_backward_fake(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads):
    return x.new_empty(x.shape), x.new_empty(normalized_shape), x.new_empty(normalized_shape)


# torch.ops.tilenorm.layernorm_forward / layernorm_backward: the kernels without autograd. mean and
# rstd are per row of x flattened to [rows, C]; dweight and dbias have x's dtype.
layernorm_forward = _library.define(
    "layernorm_forward(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, "
    "str backend, int num_threads) -> (Tensor y, Tensor mean, Tensor rstd)",
    _layernorm_forward, _layernorm_forward_fake)
layernorm_backward = _library.define(
    "layernorm_backward(Tensor dy, Tensor x, int[] normalized_shape, Tensor? weight, Tensor mean, "
    "Tensor rstd, str backend, int num_threads) -> (Tensor dx, Tensor dweight, Tensor dbias)",
    _layernorm_backward, _layernorm_backward_fake)


class LayerNormFunction(torch.autograd.Function):
    """forward runs tilenorm::layernorm_forward and saves x (made contiguous once), weight, mean
    and rstd; backward runs tilenorm::layernorm_backward on them. layer_norm() checks the
    arguments (and the ops again: they can be called directly)."""

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps, backend, num_threads):
        x = x.contiguous()
        y, mean, rstd = layernorm_forward(x, normalized_shape, weight, bias, eps, backend,
                                          num_threads)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.normalized_shape, ctx.backend, ctx.num_threads = normalized_shape, backend, num_threads
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        dx, dweight, dbias = layernorm_backward(dy, x, ctx.normalized_shape, weight, mean, rstd,
                                                ctx.backend, ctx.num_threads)
        dweight = dweight if ctx.needs_input_grad[1] else None
        dbias = dbias if ctx.needs_input_grad[2] else None
        return dx, dweight, dbias, None, None, None, None


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, backend=None,
               num_threads=None):
    """torch.nn.functional.layer_norm on a tilenorm backend, differentiable in x, weight, bias.

    backend: "cpu" (default for CPU tensors), "cuda" (default for CUDA tensors), "tile" (the
    emulated tile device; slow), "reference" (float64 loops; also takes float64 tensors).
    num_threads: worker threads of the cpu backend; None = torch.get_num_threads().
    """
    normalized_shape = _normalized_shape(normalized_shape)
    backend = _check(x, normalized_shape, weight, bias, backend)
    if num_threads is None:
        num_threads = torch.get_num_threads()
    return LayerNormFunction.apply(x, weight, bias, normalized_shape, float(eps), backend,
                                   int(num_threads))


from tilenorm.torch import nn  # noqa: E402  (nn uses layer_norm)

__all__ = ["BACKENDS", "LayerNormFunction", "layer_norm", "layernorm_backward",
           "layernorm_forward", "nn"]
