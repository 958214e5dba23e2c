"""tilenorm.torch.nn.LayerNorm and RMSNorm: torch.nn.LayerNorm and (newer torch's)
torch.nn.RMSNorm running on a tilenorm backend."""
from typing import Optional, Tuple

import torch
from torch import Tensor

import tilenorm.torch as tn


def _device_dtype_bias(args, bias, device, dtype):
    """The positional arguments after elementwise_affine, in either torch's order: torch >= 2.1
    takes (bias, device, dtype), torch 1.13 (device, dtype). A bool first is the bias."""
    if len(args) > 3:
        raise TypeError(f"LayerNorm takes at most 6 positional arguments, got {3 + len(args)}")
    if args and not isinstance(args[0], bool):
        if len(args) > 2:
            raise TypeError("LayerNorm: after elementwise_affine, torch 1.13's order is "
                            "(device, dtype), torch 2.1's (bias, device, dtype)")
        args = (bias,) + tuple(args)
    names = ("bias", "device", "dtype")
    given = dict(zip(names, args))
    return (given.get("bias", bias), given.get("device", device), given.get("dtype", dtype))


class LayerNorm(torch.nn.LayerNorm):
    """Drop-in for torch.nn.LayerNorm (a subclass of it): the same constructor arguments, in
    torch 1.13's positional order (normalized_shape, eps, elementwise_affine, device, dtype) or
    torch 2.1's (..., elementwise_affine, bias, device, dtype); the parameters `weight` and
    `bias`, so a state_dict loads either way. `bias=False` drops the bias as newer torch does.
    Extra keyword arguments: `backend` and `num_threads` of tilenorm.torch.layer_norm.

    forward(x, residual=None): with a residual, h = x + residual is normalized and (y, h)
    returned (the fused add of pre-norm blocks)."""

    # Class-level defaults, so that a torch.nn.LayerNorm whose __class__ is set to this one
    # (an in-place swap) runs on the default backend.
    backend = None
    num_threads = None

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, *args, bias=True,
                 device=None, dtype=None, backend=None, num_threads=None):
        bias, device, dtype = _device_dtype_bias(args, bias, device, dtype)
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine,
                         device=device, dtype=dtype)
        if not bias:
            self.register_parameter("bias", None)
        tn._num_threads(num_threads)  # a bad value fails here, not at the first forward
        self.backend = backend
        self.num_threads = num_threads

    def reset_parameters(self):
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    # Two signatures for TorchScript: y alone, or (y, h) with a residual.
    @torch.jit._overload_method  # noqa: F811
    def forward(self, x: Tensor, residual: None = None) -> Tensor:
        pass

    @torch.jit._overload_method  # noqa: F811
    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:
        pass

    def forward(self, x, residual: Optional[Tensor] = None):  # noqa: F811
        if torch.jit.is_scripting():
            if residual is None:
                return torch.ops.tilenorm.layer_norm(x, self.normalized_shape, self.weight,
                                                     self.bias, self.eps, self.backend,
                                                     self.num_threads)
            return torch.ops.tilenorm.add_layer_norm(x, residual, self.normalized_shape,
                                                     self.weight, self.bias, self.eps,
                                                     self.backend, self.num_threads)
        else:
            return tn.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps,
                                 residual=residual, backend=self.backend,
                                 num_threads=self.num_threads)

    def extra_repr(self):
        return f"{super().extra_repr()}, bias={self.bias is not None}, backend={self.backend}"


class RMSNorm(torch.nn.Module):
    """Drop-in for torch.nn.RMSNorm of newer torch (torch 1.13 has none): the same constructor
    arguments and the parameter `weight` (ones), so a state_dict loads either way. eps=None is
    torch's default, the machine epsilon of the compute dtype. Extra keyword arguments: `backend`
    and `num_threads` of tilenorm.torch.rms_norm. forward(x, residual=None): as LayerNorm's."""

    backend = None
    num_threads = None

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None, *, backend=None, num_threads=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = torch.nn.Parameter(
                torch.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        tn._num_threads(num_threads)
        self.backend = backend
        self.num_threads = num_threads
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)

    @torch.jit._overload_method  # noqa: F811
    def forward(self, x: Tensor, residual: None = None) -> Tensor:
        pass

    @torch.jit._overload_method  # noqa: F811
    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:
        pass

    def forward(self, x, residual: Optional[Tensor] = None):  # noqa: F811
        if torch.jit.is_scripting():
            if residual is None:
                return torch.ops.tilenorm.rms_norm(x, self.normalized_shape, self.weight,
                                                   self.eps, self.backend, self.num_threads)
            return torch.ops.tilenorm.add_rms_norm(x, residual, self.normalized_shape,
                                                   self.weight, self.eps, self.backend,
                                                   self.num_threads)
        else:
            return tn.rms_norm(x, self.normalized_shape, self.weight, self.eps,
                               residual=residual, backend=self.backend,
                               num_threads=self.num_threads)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, backend={self.backend}")
