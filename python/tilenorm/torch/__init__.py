"""tilenorm's LayerNorm and RMSNorm as PyTorch autograd ops, and the drop-in modules
tilenorm.torch.nn.LayerNorm and tilenorm.torch.nn.RMSNorm.

Semantics, dtypes, devices and backends: docs/pytorch.md.
"""
import functools
import math
import numbers

import torch
from torch.overrides import handle_torch_function, has_torch_function_variadic

from tilenorm import _C
from tilenorm.torch import _library

BACKENDS = ("cpu", "cuda", "tile", "reference")

# The dtypes each backend takes (x, weight and bias share one).
_DTYPES = {
    "cpu": (torch.float32, torch.bfloat16, torch.float64),
    "tile": (torch.float32, torch.bfloat16),
    "reference": (torch.float32, torch.bfloat16, torch.float64),
    "cuda": (torch.float32, torch.bfloat16, torch.float16),
}


@functools.lru_cache(maxsize=None)
def _unavailable(backend):
    return _C.backend_unavailable(backend)


def _normalized_shape(normalized_shape):
    if type(normalized_shape) is tuple and all(type(d) is int for d in normalized_shape):
        return normalized_shape  # the modules' own, and most callers'
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(d) for d in normalized_shape)


MAX_THREADS = 1024  # as the CLI's --threads


def _check(x, normalized_shape, weight, bias, backend, residual=None):
    """Raises a TypeError/ValueError/RuntimeError naming the offending argument; returns the
    backend to use."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    device, dtype, shape = x.device, x.dtype, x.shape
    if backend is None:
        backend = "cuda" if device.type == "cuda" else "cpu"
    elif backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    why = _unavailable(backend)
    if why:
        raise RuntimeError(f"tilenorm: {why}")
    device_type = "cuda" if backend == "cuda" else "cpu"
    if device.type != device_type:
        raise ValueError(
            f"x is on device {device}, but backend '{backend}' runs on {device_type} tensors")
    if dtype not in _DTYPES[backend]:
        takes = ", ".join(str(d) for d in _DTYPES[backend])
        raise TypeError(f"x has dtype {dtype}; backend '{backend}' takes {takes}")
    n = len(normalized_shape)
    if n == 0 or len(shape) < n or shape[len(shape) - n:] != normalized_shape:
        raise ValueError(f"normalized_shape {list(normalized_shape)} does not match the last "
                         f"dims of x (shape {list(x.shape)})")
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"residual must be a torch.Tensor or None, got "
                            f"{type(residual).__name__}")
        if residual.device != device:
            raise ValueError(f"residual is on device {residual.device}, x on {x.device}")
        if residual.dtype != dtype:
            raise TypeError(f"residual has dtype {residual.dtype}, expected x's dtype {x.dtype}")
        if residual.shape != shape:
            raise ValueError(f"residual has shape {list(residual.shape)}, expected x's shape "
                             f"{list(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        if t.device != device:
            raise ValueError(f"{name} is on device {t.device}, x on {x.device}")
        if t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, expected x's dtype {x.dtype}")
        if t.shape != normalized_shape:
            raise ValueError(f"{name} has shape {list(t.shape)}, expected normalized_shape "
                             f"{list(normalized_shape)}")
    return backend


def _num_threads(num_threads):
    """num_threads as the kernels take it: None is torch.get_num_threads(); else 0 (every
    hardware thread) to MAX_THREADS."""
    if num_threads is None:
        return torch.get_num_threads()
    if type(num_threads) is int and 0 <= num_threads <= MAX_THREADS:
        return num_threads
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}")
    if not 0 <= num_threads <= MAX_THREADS:
        raise ValueError(f"num_threads must be in 0..{MAX_THREADS} (0 = every hardware thread), "
                         f"got {num_threads}")
    return int(num_threads)


def _call(kernel, norm, backend, num_threads, C, x, *tensors):
    """Runs a _C kernel on tensors laid out as [rows, C] (x-like), [C] (per column) and [rows]
    (statistics), contiguous; CUDA kernels go on the current stream of x's device,
    asynchronously."""
    if backend != "cuda":
        return kernel(norm, backend, C, x, *tensors, num_threads, -1, 0)
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        return kernel(norm, backend, C, x, *tensors, num_threads, x.device.index, stream)


def _stat_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _gamma(weight, x, normalized_shape):
    if weight is None:
        return torch.ones(normalized_shape, dtype=x.dtype, device=x.device)
    return weight.contiguous()


def _rows(x, normalized_shape):
    return math.prod(x.shape[:x.dim() - len(normalized_shape)])


def _check_backward(dy, x, normalized_shape, stats, dh_in):
    """The backward op's own arguments (the forward's are checked by _check); stats: name ->
    tensor of the per-row statistics."""
    rows = _rows(x, normalized_shape)
    expected = [("dy", dy, tuple(x.shape), x.dtype)]
    expected += [(name, t, (rows,), _stat_dtype(x.dtype)) for name, t in stats.items()]
    if dh_in is not None:
        expected.append(("dh_in", dh_in, tuple(x.shape), x.dtype))
    for name, t, shape, dtype in expected:
        if t.device != x.device:
            raise ValueError(f"{name} is on device {t.device}, x on {x.device}")
        if t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, expected {dtype}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {list(t.shape)}, expected {list(shape)}")


def _forward(norm, x, residual, normalized_shape, weight, bias, eps, backend, num_threads,
             checked=False):
    """The forward kernel of either norm, with the fused add h = x + residual when residual is
    given: (y, h, mean, rstd); h is None without a residual, mean None for "rmsnorm".
    checked: the caller has run _check and _num_threads."""
    if not checked:
        normalized_shape = tuple(normalized_shape)
        _check(x, normalized_shape, weight, bias, backend, residual)
        num_threads = _num_threads(num_threads)
    C = math.prod(normalized_shape)
    x = x.contiguous()
    rows = x.numel() // C if C else _rows(x, normalized_shape)
    if C == 0 and rows > 0:  # the library's message (its data pointer would read as absent)
        raise ValueError(f"tilenorm: x has C = 0 (shape {list(x.shape)}): nothing to normalize")
    y = torch.empty_like(x)
    h = None if residual is None else torch.empty_like(x)
    rstd = torch.empty(rows, dtype=_stat_dtype(x.dtype), device=x.device)
    mean = torch.empty_like(rstd) if norm == "layernorm" else None
    if rows > 0:
        _call(_C.norm_forward, norm, backend, num_threads, C, x,
              None if residual is None else residual.contiguous(),
              _gamma(weight, x, normalized_shape), None if bias is None else bias.contiguous(),
              float(eps), y, h, mean, rstd)
    return y, h, mean, rstd


def _backward(norm, dy, x, normalized_shape, weight, mean, rstd, backend, num_threads, dh_in,
              checked=False):
    """The backward kernel of either norm: (dx, dweight, dbias); dbias is None for "rmsnorm".
    x is h when the forward took a residual; dh_in (or None) is added to dx. checked: the
    tensors come from a checked forward (autograd), so only the direct op call checks them."""
    if not checked:
        normalized_shape = tuple(normalized_shape)
        _check(x, normalized_shape, weight, None, backend)
        num_threads = _num_threads(num_threads)
        stats = {"mean": mean, "rstd": rstd} if norm == "layernorm" else {"rrms": rstd}
        _check_backward(dy, x, normalized_shape, stats, dh_in)
    C = math.prod(normalized_shape)
    x = x.contiguous()
    dx = torch.empty_like(x)
    dgamma = torch.empty(normalized_shape, dtype=rstd.dtype, device=x.device)
    dbeta = torch.empty_like(dgamma) if norm == "layernorm" else None
    if x.numel() > 0:
        _call(_C.norm_backward, norm, backend, num_threads, C, x, dy.contiguous(),
              _gamma(weight, x, normalized_shape), None if mean is None else mean.contiguous(),
              rstd.contiguous(), None if dh_in is None else dh_in.contiguous(), dx, dgamma, dbeta)
    else:  # no rows: the gradients of the parameters are zero
        dgamma.zero_()
        if dbeta is not None:
            dbeta.zero_()
    return dx, dgamma.to(x.dtype), None if dbeta is None else dbeta.to(x.dtype)


def _stats_fake(x, normalized_shape):
    return x.new_empty((_rows(x, normalized_shape),), dtype=_stat_dtype(x.dtype))


def _layernorm_forward(x, normalized_shape, weight, bias, eps, backend, num_threads):
    y, _, mean, rstd = _forward("layernorm", x, None, normalized_shape, weight, bias, eps,
                                backend, num_threads)
    return y, mean, rstd


def _layernorm_forward_fake(x, normalized_shape, weight, bias, eps, backend, num_threads):
    mean = _stats_fake(x, normalized_shape)
    return x.new_empty(x.shape), mean, torch.empty_like(mean)


def _add_layernorm_forward(x, residual, normalized_shape, weight, bias, eps, backend,
                           num_threads):
    return _forward("layernorm", x, residual, normalized_shape, weight, bias, eps, backend,
                    num_threads)


def _add_layernorm_forward_fake(x, residual, normalized_shape, weight, bias, eps, backend,
                                num_threads):
    mean = _stats_fake(x, normalized_shape)
    return x.new_empty(x.shape), x.new_empty(x.shape), mean, torch.empty_like(mean)


def _layernorm_backward(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads,
                        dh_in=None):
    return _backward("layernorm", dy, x, normalized_shape, weight, mean, rstd, backend,
                     num_threads, dh_in)


def _layernorm_backward_fake(dy, x, normalized_shape, weight, mean, rstd, backend, num_threads,
                             dh_in=None):
    return x.new_empty(x.shape), x.new_empty(normalized_shape), x.new_empty(normalized_shape)


def _rmsnorm_forward(x, normalized_shape, weight, eps, backend, num_threads):
    y, _, _, rrms = _forward("rmsnorm", x, None, normalized_shape, weight, None, eps, backend,
                             num_threads)
    return y, rrms


def _rmsnorm_forward_fake(x, normalized_shape, weight, eps, backend, num_threads):
    return x.new_empty(x.shape), _stats_fake(x, normalized_shape)


def _add_rmsnorm_forward(x, residual, normalized_shape, weight, eps, backend, num_threads):
    y, h, _, rrms = _forward("rmsnorm", x, residual, normalized_shape, weight, None, eps, backend,
                             num_threads)
    return y, h, rrms


def _add_rmsnorm_forward_fake(x, residual, normalized_shape, weight, eps, backend, num_threads):
    return x.new_empty(x.shape), x.new_empty(x.shape), _stats_fake(x, normalized_shape)


def _rmsnorm_backward(dy, x, normalized_shape, weight, rrms, backend, num_threads, dh_in=None):
    dx, dweight, _ = _backward("rmsnorm", dy, x, normalized_shape, weight, None, rrms, backend,
                               num_threads, dh_in)
    return dx, dweight


def _rmsnorm_backward_fake(dy, x, normalized_shape, weight, rrms, backend, num_threads,
                           dh_in=None):
    return x.new_empty(x.shape), x.new_empty(normalized_shape)


# torch.ops.tilenorm.<norm>_forward / add_<norm>_forward / <norm>_backward: the kernels without
# autograd. The statistics are per row of x flattened to [rows, C]; dweight and dbias have x's
# dtype. add_*: the fused add h = x + residual, normalized and returned; their backward takes h
# as x and dh_in, the gradient arriving on h, which is added to dx.
layernorm_forward = _library.define(
    "layernorm_forward(Tensor x, int[] normalized_shape, Tensor? weight, Tensor? bias, float eps, "
    "str backend, int num_threads) -> (Tensor y, Tensor mean, Tensor rstd)",
    _layernorm_forward, _layernorm_forward_fake)
add_layernorm_forward = _library.define(
    "add_layernorm_forward(Tensor x, Tensor residual, int[] normalized_shape, Tensor? weight, "
    "Tensor? bias, float eps, str backend, int num_threads) "
    "-> (Tensor y, Tensor h, Tensor mean, Tensor rstd)",
    _add_layernorm_forward, _add_layernorm_forward_fake)
layernorm_backward = _library.define(
    "layernorm_backward(Tensor dy, Tensor x, int[] normalized_shape, Tensor? weight, Tensor mean, "
    "Tensor rstd, str backend, int num_threads, Tensor? dh_in=None) "
    "-> (Tensor dx, Tensor dweight, Tensor dbias)",
    _layernorm_backward, _layernorm_backward_fake)
rmsnorm_forward = _library.define(
    "rmsnorm_forward(Tensor x, int[] normalized_shape, Tensor? weight, float eps, str backend, "
    "int num_threads) -> (Tensor y, Tensor rrms)",
    _rmsnorm_forward, _rmsnorm_forward_fake)
add_rmsnorm_forward = _library.define(
    "add_rmsnorm_forward(Tensor x, Tensor residual, int[] normalized_shape, Tensor? weight, "
    "float eps, str backend, int num_threads) -> (Tensor y, Tensor h, Tensor rrms)",
    _add_rmsnorm_forward, _add_rmsnorm_forward_fake)
rmsnorm_backward = _library.define(
    "rmsnorm_backward(Tensor dy, Tensor x, int[] normalized_shape, Tensor? weight, Tensor rrms, "
    "str backend, int num_threads, Tensor? dh_in=None) -> (Tensor dx, Tensor dweight)",
    _rmsnorm_backward, _rmsnorm_backward_fake)


def _forward_ops(norm, x, residual, normalized_shape, weight, bias, eps, backend, num_threads):
    """_forward through the dispatcher ops: (y, h, mean, rstd)."""
    xc = x.contiguous()
    if residual is None:
        if norm == "layernorm":
            y, mean, rstd = layernorm_forward(xc, normalized_shape, weight, bias, eps, backend,
                                              num_threads)
        else:
            (y, rstd), mean = rmsnorm_forward(xc, normalized_shape, weight, eps, backend,
                                              num_threads), None
        return y, None, mean, rstd
    res = residual.contiguous()
    if norm == "layernorm":
        return add_layernorm_forward(xc, res, normalized_shape, weight, bias, eps, backend,
                                     num_threads)
    y, h, rstd = add_rmsnorm_forward(xc, res, normalized_shape, weight, eps, backend,
                                     num_threads)
    return y, h, None, rstd


def _backward_ops(norm, dy, x, normalized_shape, weight, mean, rstd, backend, num_threads, dh):
    """_backward through the dispatcher ops: (dx, dweight, dbias)."""
    if norm == "layernorm":
        return layernorm_backward(dy, x, normalized_shape, weight, mean, rstd, backend,
                                  num_threads, dh)
    dx, dweight = rmsnorm_backward(dy, x, normalized_shape, weight, rstd, backend, num_threads,
                                   dh)
    return dx, dweight, None


def _differentiable_backward(norm, dy, x, weight, normalized_shape, eps):
    """The backward of either norm from differentiable torch ops, for when the backward itself
    is differentiated (create_graph=True): the formulas of include/tilenorm/layernorm.h and
    rmsnorm.h, with the statistics recomputed from x so that their dependence on x is part of
    the graph. Computed in the statistics' dtype (f32 for f32 and bf16 data, f64 for f64), the
    results rounded to x's dtype: (dx, dweight, dbias)."""
    C = math.prod(normalized_shape)
    dt = _stat_dtype(x.dtype)
    x2 = x.reshape(-1, C).to(dt)
    dy2 = dy.reshape(-1, C).to(dt)
    if norm == "layernorm":
        xc = x2 - x2.mean(-1, keepdim=True)
    else:
        xc = x2
    rstd = torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps)
    xhat = xc * rstd
    g = dy2 if weight is None else dy2 * weight.reshape(C).to(dt)
    inner = g - xhat * (g * xhat).mean(-1, keepdim=True)
    if norm == "layernorm":
        inner = inner - g.mean(-1, keepdim=True)
    dx = (rstd * inner).to(x.dtype).view(x.shape)
    dweight = (dy2 * xhat).sum(0).to(x.dtype).view(normalized_shape)
    dbias = dy2.sum(0).to(x.dtype).view(normalized_shape) if norm == "layernorm" else None
    return dx, dweight, dbias


def _forward_checked(norm, x, residual, normalized_shape, weight, bias, eps, backend,
                     num_threads):
    """_forward of arguments that layer_norm() / rms_norm() checked: through the dispatcher ops
    while the profiler records (so that it shows them), else the kernels directly (one
    dispatcher hop less per call); the bits are the same."""
    if torch.autograd._profiler_enabled():
        return _forward_ops(norm, x, residual, normalized_shape, weight, bias, eps, backend,
                            num_threads)
    return _forward(norm, x, residual, normalized_shape, weight, bias, eps, backend, num_threads,
                    checked=True)


class NormFunction(torch.autograd.Function):
    """One autograd op for both norms, with or without the fused residual add. forward runs
    tilenorm::[add_]<norm>_forward and saves x (h = x + residual with a residual, an output),
    weight and the statistics (mean and rstd; rrms alone for "rmsnorm"). backward runs
    tilenorm::<norm>_backward on them, dh (the gradient of h) going in as dh_in; when the
    backward is itself differentiated (create_graph=True) it is computed from differentiable
    torch ops of the same formulas instead (_differentiable_backward), so second-order gradients
    are exact rather than silently missing terms. It trusts its arguments: layer_norm() /
    rms_norm() check them first (the kernel ops check their own: they can be called directly).
    It runs the kernels through the dispatcher ops while the profiler records (so the profiler
    shows them), else calls them directly (one dispatcher hop less per call); the bits are the
    same."""

    @staticmethod
    def forward(ctx, norm, x, residual, weight, bias, normalized_shape, eps, backend,
                num_threads):
        ctx.set_materialize_grads(False)
        y, h, mean, rstd = _forward_checked(norm, x, residual, normalized_shape, weight, bias, eps,
                                            backend, num_threads)
        ctx.save_for_backward(x if h is None else h, weight, mean, rstd)
        out = y if h is None else (y, h)
        ctx.norm, ctx.normalized_shape, ctx.eps = norm, normalized_shape, eps
        ctx.backend, ctx.num_threads = backend, num_threads
        return out

    @staticmethod
    def backward(ctx, dy, dh=None):
        x, weight, mean, rstd = ctx.saved_tensors
        grad = ctx.needs_input_grad
        if dy is None:  # only h is used: h = x + residual passes dh on
            return (None, dh, dh if grad[2] else None, None, None, None, None, None, None)
        if torch.is_grad_enabled():  # create_graph=True: the backward will be differentiated
            dx, dweight, dbias = _differentiable_backward(ctx.norm, dy, x, weight,
                                                          ctx.normalized_shape, ctx.eps)
            if dh is not None:
                dx = dx + dh
        else:
            args = (dy, x.contiguous(), ctx.normalized_shape, weight, mean, rstd, ctx.backend,
                    ctx.num_threads, dh)
            if torch.autograd._profiler_enabled():
                dx, dweight, dbias = _backward_ops(ctx.norm, *args)
            else:
                dx, dweight, dbias = _backward(ctx.norm, *args, checked=True)
        return (None, dx, dx if grad[2] else None, dweight if grad[3] else None,
                dbias if grad[4] else None, None, None, None, None)


def _requires_grad(t):
    return t is not None and t.requires_grad


def _apply(norm, x, residual, normalized_shape, weight, bias, eps, backend, num_threads):
    normalized_shape = _normalized_shape(normalized_shape)
    backend = _check(x, normalized_shape, weight, bias, backend, residual)
    num_threads = _num_threads(num_threads)
    if torch.is_grad_enabled() and (x.requires_grad or _requires_grad(weight) or
                                    _requires_grad(bias) or _requires_grad(residual)):
        return NormFunction.apply(norm, x, residual, weight, bias, normalized_shape, float(eps),
                                  backend, num_threads)
    # Nothing to differentiate (inference, no_grad): the kernels without the autograd op.
    y, h, _, _ = _forward_checked(norm, x, residual, normalized_shape, weight, bias, float(eps),
                                  backend, num_threads)
    return y if h is None else (y, h)


def _default_eps(x, eps):
    """rms_norm's eps=None: torch's default, the machine epsilon of the compute dtype."""
    if eps is None and isinstance(x, torch.Tensor):
        return torch.finfo(torch.float64 if x.dtype == torch.float64 else torch.float32).eps
    return eps


def _pair(residual, out):
    """(y, h) of a torch-function override's result: a torch.fx Proxy of the pair is split into
    two (torch 1.13's Proxy cannot be unpacked on Python 3.11)."""
    if residual is not None and isinstance(out, torch.fx.Proxy):
        return out[0], out[1]
    return out


def _traced(norm, x, residual, normalized_shape, weight, bias, eps, backend, num_threads):
    """Under torch.jit.trace (and torch.onnx.export): the dispatcher op, which the trace records
    as one node (a Python autograd.Function would be an unsaveable PythonOp)."""
    ns = list(_normalized_shape(normalized_shape))
    if norm == "layernorm":
        if residual is None:
            return layer_norm_op(x, ns, weight, bias, eps, backend, num_threads)
        return add_layer_norm_op(x, residual, ns, weight, bias, eps, backend, num_threads)
    if residual is None:
        return rms_norm_op(x, ns, weight, eps, backend, num_threads)
    return add_rms_norm_op(x, residual, ns, weight, eps, backend, num_threads)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, residual=None,
               backend=None, num_threads=None):
    """torch.nn.functional.layer_norm on a tilenorm backend, differentiable (to any order) in
    x, weight, bias (and residual).

    residual: None, or a tensor like x: the fused add of pre-norm blocks. h = x + residual is
    normalized, and (y, h) is returned instead of y; gradients reach x and residual through
    both outputs.
    backend: "cpu" (default for CPU tensors), "cuda" (default for CUDA tensors), "tile" (the
    emulated tile device; slow), "reference" (float64 loops). float64 tensors run on "cpu" and
    "reference" in float64 throughout.
    num_threads: worker threads of the cpu backend, 0..1024 (0 = every hardware thread);
    None = torch.get_num_threads().
    """
    if has_torch_function_variadic(x, residual, weight, bias):  # torch.fx proxies, subclasses
        return _pair(residual, handle_torch_function(
            layer_norm, (x, residual, weight, bias), x, normalized_shape, weight, bias, eps,
            residual=residual, backend=backend, num_threads=num_threads))
    if torch._C._is_tracing():  # torch.jit.is_tracing() in eager mode, one call less
        return _traced("layernorm", x, residual, normalized_shape, weight, bias, eps, backend,
                       num_threads)
    return _apply("layernorm", x, residual, normalized_shape, weight, bias, eps, backend,
                  num_threads)


def rms_norm(x, normalized_shape, weight=None, eps=None, *, residual=None, backend=None,
             num_threads=None):
    """torch.nn.functional.rms_norm (newer torch) on a tilenorm backend, differentiable (to any
    order) in x and weight (and residual): y = h / sqrt(mean(h^2) + eps) * weight over the
    normalized dims, h = x (+ residual).

    eps=None is torch's default: the machine epsilon of the compute dtype (float32's, 2^-23, for
    float32 and bfloat16 data; float64's for float64). residual, backend, num_threads: as
    layer_norm.
    """
    if has_torch_function_variadic(x, residual, weight):
        return _pair(residual, handle_torch_function(
            rms_norm, (x, residual, weight), x, normalized_shape, weight, eps, residual=residual,
            backend=backend, num_threads=num_threads))
    if torch._C._is_tracing():  # torch.jit.is_tracing() in eager mode, one call less
        return _traced("rmsnorm", x, residual, normalized_shape, weight, None, eps, backend,
                       num_threads)
    return _apply("rmsnorm", x, residual, normalized_shape, weight, None, _default_eps(x, eps),
                  backend, num_threads)


def _layer_norm_kernel(x, normalized_shape, weight=None, bias=None, eps=1e-5, backend=None,
                       num_threads=None):
    return _apply("layernorm", x, None, normalized_shape, weight, bias, eps, backend,
                  num_threads)


def _add_layer_norm_kernel(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5,
                           backend=None, num_threads=None):
    return _apply("layernorm", x, residual, normalized_shape, weight, bias, eps, backend,
                  num_threads)


def _rms_norm_kernel(x, normalized_shape, weight=None, eps=None, backend=None, num_threads=None):
    return _apply("rmsnorm", x, None, normalized_shape, weight, None, _default_eps(x, eps),
                  backend, num_threads)


def _add_rms_norm_kernel(x, residual, normalized_shape, weight=None, eps=None, backend=None,
                         num_threads=None):
    return _apply("rmsnorm", x, residual, normalized_shape, weight, None, _default_eps(x, eps),
                  backend, num_threads)


def _norm_fake(x, *args):
    return x.new_empty(x.shape)


def _add_norm_fake(x, residual, *args):
    return x.new_empty(x.shape), x.new_empty(x.shape)


# torch.ops.tilenorm.layer_norm / rms_norm / add_layer_norm / add_rms_norm: the differentiable
# ops (to any order), what layer_norm() and rms_norm() compute, as dispatcher ops that
# TorchScript, torch.jit.trace and torch.onnx.export record as one node; the modules call them
# when scripted. add_*: the fused add, returning (y, h).
_OPTS = "str? backend=None, int? num_threads=None"
layer_norm_op = _library.define(
    "layer_norm(Tensor x, int[] normalized_shape, Tensor? weight=None, Tensor? bias=None, "
    f"float eps=1e-05, {_OPTS}) -> Tensor",
    _layer_norm_kernel, _norm_fake, autograd=True)
add_layer_norm_op = _library.define(
    "add_layer_norm(Tensor x, Tensor residual, int[] normalized_shape, Tensor? weight=None, "
    f"Tensor? bias=None, float eps=1e-05, {_OPTS}) -> (Tensor y, Tensor h)",
    _add_layer_norm_kernel, _add_norm_fake, autograd=True)
rms_norm_op = _library.define(
    "rms_norm(Tensor x, int[] normalized_shape, Tensor? weight=None, float? eps=None, "
    f"{_OPTS}) -> Tensor",
    _rms_norm_kernel, _norm_fake, autograd=True)
add_rms_norm_op = _library.define(
    "add_rms_norm(Tensor x, Tensor residual, int[] normalized_shape, Tensor? weight=None, "
    f"float? eps=None, {_OPTS}) -> (Tensor y, Tensor h)",
    _add_rms_norm_kernel, _add_norm_fake, autograd=True)

from tilenorm.torch import _onnx  # noqa: E402,F401  (registers the ops' ONNX symbolics)
from tilenorm.torch import nn  # noqa: E402  (nn uses layer_norm)

__all__ = ["BACKENDS", "MAX_THREADS", "NormFunction", "add_layer_norm_op",
           "add_layernorm_forward", "add_rms_norm_op", "add_rmsnorm_forward", "layer_norm",
           "layer_norm_op", "layernorm_backward", "layernorm_forward", "nn", "rms_norm",
           "rms_norm_op", "rmsnorm_backward", "rmsnorm_forward"]
