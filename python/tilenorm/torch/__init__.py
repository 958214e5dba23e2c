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


class NormFunction(torch.autograd.Function):
    """One autograd op for both norms. forward saves x (made contiguous once), gamma and the
    statistics (mean and rstd; rrms alone for "rmsnorm"); backward runs tilenorm's backward on
    them. Arguments are checked by layer_norm() / rms_norm()."""

    @staticmethod
    def forward(ctx, norm, x, weight, bias, normalized_shape, eps, backend, num_threads):
        C = math.prod(normalized_shape)
        x2 = x.contiguous().view(-1, C)
        rows = x2.shape[0]
        if weight is not None:
            gamma = weight.contiguous().view(C)
        else:
            gamma = torch.ones(C, dtype=x.dtype, device=x.device)
        beta = bias.contiguous().view(C) if bias is not None else None
        stat_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        y = torch.empty_like(x2)
        rstd = torch.empty(rows, dtype=stat_dtype, device=x.device)
        mean = torch.empty_like(rstd) if norm == "layernorm" else None
        if rows > 0:
            _call(_C.norm_forward, norm, backend, num_threads, x2, gamma, beta, float(eps), y,
                  mean, rstd)
        ctx.save_for_backward(x2, gamma, mean, rstd)
        ctx.norm, ctx.shape, ctx.normalized_shape = norm, x.shape, normalized_shape
        ctx.backend, ctx.num_threads = backend, num_threads
        return y.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x2, gamma, mean, rstd = ctx.saved_tensors
        dy2 = dy.contiguous().view(x2.shape)
        dx = torch.empty_like(x2)
        dgamma = torch.zeros(x2.shape[1], dtype=rstd.dtype, device=x2.device)
        dbeta = torch.zeros_like(dgamma) if mean is not None else None
        if x2.shape[0] > 0:
            _call(_C.norm_backward, ctx.norm, ctx.backend, ctx.num_threads, x2, dy2, gamma, mean,
                  rstd, dx, dgamma, dbeta)
        grad = ctx.needs_input_grad
        dweight = dgamma.view(ctx.normalized_shape).to(x2.dtype) if grad[2] else None
        dbias = dbeta.view(ctx.normalized_shape).to(x2.dtype) if grad[3] else None
        return None, dx.view(ctx.shape), dweight, dbias, None, None, None, None


def _apply(norm, x, normalized_shape, weight, bias, eps, backend, num_threads):
    normalized_shape = _normalized_shape(normalized_shape)
    backend = _check(x, normalized_shape, weight, bias, backend)
    if num_threads is None:
        num_threads = torch.get_num_threads()
    return NormFunction.apply(norm, x, weight, bias, normalized_shape, eps, backend,
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

__all__ = ["BACKENDS", "NormFunction", "layer_norm", "rms_norm", "nn"]
