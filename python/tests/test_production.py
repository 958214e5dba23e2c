"""The paths models take to production, with tilenorm's modules inside: torch.jit.script and
torch.jit.trace (forward, backward, jit.save / jit.load), torch.fx.symbolic_trace, and
torch.onnx.export (opset 17) checked with onnx's checker and run by a small numpy evaluator of
the ONNX ops the graph holds."""
import io
import os
import tempfile

import numpy as np
import pytest
import torch

import tilenorm.torch as tn


class Block(torch.nn.Module):
    """Pre-norm block with the fused add: (hidden, residual) -> (hidden, residual)."""

    def __init__(self, dim, norm):
        super().__init__()
        self.norm = norm
        self.fc = torch.nn.Linear(dim, dim)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor):
        y, residual = self.norm(hidden, residual)
        return torch.tanh(self.fc(y)), residual


class Model(torch.nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.inp = torch.nn.Linear(8, dim)
        self.ln = tn.nn.LayerNorm(dim)
        self.block1 = Block(dim, tn.nn.LayerNorm(dim))
        self.block2 = Block(dim, tn.nn.RMSNorm(dim, eps=1e-6))
        self.final = tn.nn.RMSNorm(dim)
        self.out = torch.nn.Linear(dim, 1)

    def forward(self, x):
        h = self.ln(self.inp(x))
        hidden, residual = self.block1(h, h)
        hidden, residual = self.block2(hidden, residual)
        y, _ = self.final(hidden, residual)
        return self.out(y)


def make_model():
    torch.manual_seed(0)
    m = Model()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def forward_backward(model, x):
    model.zero_grad()
    out = model(x)
    out.sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def assert_same_run(a, b, tol=0.0):
    (oa, ga), (ob, gb) = a, b
    assert (oa - ob).abs().max().item() <= tol
    for i, (p, q) in enumerate(zip(ga, gb)):
        assert (p - q).abs().max().item() <= tol, i


@pytest.fixture
def tmpdir_unique():
    d = tempfile.mkdtemp(prefix="tilenorm_production_")
    yield d
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    os.rmdir(d)


X = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))


def tilenorm_nodes(graph):
    return [n.kind() for n in graph.nodes() if n.kind().startswith("tilenorm::")]


@pytest.mark.parametrize("how", ["script", "trace"])
def test_jit_forward_backward_save_load(how, tmpdir_unique):
    model = make_model()
    eager = forward_backward(model, X)
    jitted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, X)
    assert_same_run(forward_backward(jitted, X), eager)
    if how == "trace":
        graph = jitted.inlined_graph
        kinds = [n.kind() for n in graph.nodes()]
        assert "prim::PythonOp" not in kinds
        assert sorted(set(tilenorm_nodes(graph))) == [
            "tilenorm::add_layer_norm", "tilenorm::add_rms_norm", "tilenorm::layer_norm"]
    path = os.path.join(tmpdir_unique, "model.pt")
    torch.jit.save(jitted, path)
    loaded = torch.jit.load(path)
    assert_same_run(forward_backward(loaded, X), eager)


def test_fx_symbolic_trace_calls_tilenorm():
    model = make_model()
    gm = torch.fx.symbolic_trace(model)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count(tn.layer_norm) == 2 and targets.count(tn.rms_norm) == 2
    assert_same_run(forward_backward(gm, X), forward_backward(model, X))


# A numpy evaluator of the ONNX ops the exported graph holds (semantics of the ONNX operator
# specification), so that the exported model is checked by running it, not only by reading it.
def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _layer_normalization(x, scale, bias=None, axis=-1, epsilon=1e-5, **_):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + epsilon) * scale
    return y + bias if bias is not None else y


def _gemm(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0, **_):
    a, b = (a.T if transA else a), (b.T if transB else b)
    y = alpha * (a @ b)
    return y + beta * c if c is not None else y


ONNX_OPS = {
    "Add": lambda a, b: a + b, "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b,
    "Sqrt": np.sqrt, "Tanh": np.tanh, "MatMul": lambda a, b: a @ b, "Gemm": _gemm,
    "ReduceMean": lambda x, axes, keepdims=1: x.mean(axis=tuple(axes), keepdims=bool(keepdims)),
    "LayerNormalization": _layer_normalization,
}


def run_onnx(model, inputs):
    from onnx import numpy_helper
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    env.update(inputs)
    for node in model.graph.node:
        attrs = _attrs(node)
        if node.op_type == "Constant":
            env[node.output[0]] = numpy_helper.to_array(attrs["value"]).astype(np.float64)
            continue
        assert node.op_type in ONNX_OPS, f"no evaluator for {node.op_type}"
        args = [env[i] if i else None for i in node.input]
        env[node.output[0]] = ONNX_OPS[node.op_type](*args, **attrs)
    return [env[o.name] for o in model.graph.output]


def test_onnx_export_opset17():
    onnx = pytest.importorskip(
        "onnx", reason="onnx is not installed (Debian: python3-onnx; scripts/install.sh)")
    model = make_model().eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (X,), buf, opset_version=17, input_names=["x"],
                      output_names=["y"])
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    kinds = [n.op_type for n in proto.graph.node]
    assert kinds.count("LayerNormalization") == 2  # ln and block1's norm
    assert kinds.count("ReduceMean") == 2  # the two RMSNorms, decomposed
    (got,) = run_onnx(proto, {"x": X.double().numpy()})
    want = model(X).detach().double().numpy()
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
