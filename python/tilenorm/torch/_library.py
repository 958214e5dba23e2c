"""tilenorm's kernels as torch dispatcher ops, torch.ops.tilenorm.<name>: the dispatcher, the
profiler and torch.compile see one opaque op per call. Versions and what each gets:
docs/pytorch.md."""
import torch

_lib = torch.library.Library("tilenorm", "DEF")


def define(schema, kernel, fake, autograd=False):
    """Defines tilenorm::<schema>: `kernel` runs it on CPU and CUDA tensors, `fake` (same
    arguments) returns outputs of the right shapes and dtypes without reading any data, for meta
    and fake tensors. autograd: `kernel` also serves the Autograd key (it builds its own graph
    node: an autograd.Function), so the op is differentiable wherever the dispatcher runs it
    (TorchScript, traced graphs). Returns the op."""
    name = schema.split("(", 1)[0]
    _lib.define(schema)
    _lib.impl(name, kernel, "CPU")
    _lib.impl(name, kernel, "CUDA")
    if autograd:
        _lib.impl(name, kernel, "Autograd")
    if hasattr(torch.library, "register_fake"):  # torch >= 2.4 (untested here)
        torch.library.register_fake(f"tilenorm::{name}", fake, lib=_lib)
    elif hasattr(torch.library, "impl_abstract"):  # torch 2.1 to 2.3 (untested here)
        torch.library.impl_abstract(f"tilenorm::{name}", fake, lib=_lib)
    else:
        # torch 1.13 (and 2.0, untested here): a Meta kernel. 1.13's dispatcher has no autograd
        # fallthrough for meta tensors, so it goes there too (the op has no autograd of its own).
        _lib.impl(name, fake, "Meta")
        _lib.impl(name, fake, "AutogradMeta")
    return getattr(torch.ops.tilenorm, name).default
