"""ONNX export of the differentiable ops (torch.onnx.export, opset >= 17): tilenorm::layer_norm
as ONNX LayerNormalization, tilenorm::rms_norm as its decomposition (Mul, ReduceMean, Add,
Sqrt, Div, Mul), the add_* forms with an Add in front returning (y, h)."""
import torch
from torch.onnx import symbolic_helper as sh

OPSET = 17  # the first with LayerNormalization

_DTYPES = {"Float": torch.float32, "Double": torch.float64, "BFloat16": torch.bfloat16,
           "Half": torch.float16}


def _dtype(x):
    try:
        return _DTYPES.get(x.type().scalarType(), torch.float32)
    except RuntimeError:  # no type recorded
        return torch.float32


def _weight(g, x, weight, ns):
    if not sh._is_none(weight):
        return weight
    return g.op("Constant", value_t=torch.ones(ns, dtype=_dtype(x)))


def _layer_norm(g, x, ns, weight, bias, eps):
    ns = sh._get_const(ns, "is", "normalized_shape")
    inputs = [x, _weight(g, x, weight, ns)] + ([] if sh._is_none(bias) else [bias])
    return g.op("LayerNormalization", *inputs, epsilon_f=sh._get_const(eps, "f", "eps"),
                axis_i=-len(ns))


def _rms_norm(g, x, ns, weight, eps):
    ns = sh._get_const(ns, "is", "normalized_shape")
    dtype = _dtype(x)
    eps = None if sh._is_none(eps) else sh._get_const(eps, "f", "eps")
    if eps is None:
        eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps
    mean_sq = g.op("ReduceMean", g.op("Mul", x, x), axes_i=list(range(-len(ns), 0)), keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean_sq, g.op("Constant", value_t=torch.tensor(eps, dtype=dtype))))
    y = g.op("Div", x, rms)
    return y if sh._is_none(weight) else g.op("Mul", y, weight)


def layer_norm(g, x, ns, weight, bias, eps, backend, num_threads):
    return _layer_norm(g, x, ns, weight, bias, eps)


def add_layer_norm(g, x, residual, ns, weight, bias, eps, backend, num_threads):
    h = g.op("Add", x, residual)
    return _layer_norm(g, h, ns, weight, bias, eps), h


def rms_norm(g, x, ns, weight, eps, backend, num_threads):
    return _rms_norm(g, x, ns, weight, eps)


def add_rms_norm(g, x, residual, ns, weight, eps, backend, num_threads):
    h = g.op("Add", x, residual)
    return _rms_norm(g, h, ns, weight, eps), h


for _fn in (layer_norm, add_layer_norm, rms_norm, add_rms_norm):
    torch.onnx.register_custom_op_symbolic(f"tilenorm::{_fn.__name__}", _fn, OPSET)
