"""tilenorm.torch.nn.LayerNorm and RMSNorm: torch.nn.LayerNorm and (newer torch's)
torch.nn.RMSNorm running on a tilenorm backend."""
import torch

import tilenorm.torch as tn


class LayerNorm(torch.nn.LayerNorm):
    """Drop-in for torch.nn.LayerNorm (a subclass of it): the same constructor arguments, the
    parameters `weight` and `bias`, so a state_dict loads either way. `bias=False` drops the bias
    as newer torch does (torch 1.13 has no such argument). Extra keyword arguments: `backend` and
    `num_threads` of tilenorm.torch.layer_norm."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None, *, backend=None, num_threads=None):
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine,
                         device=device, dtype=dtype)
        if not bias:
            self.register_parameter("bias", None)
        self.backend = backend
        self.num_threads = num_threads

    def reset_parameters(self):
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x):
        return tn.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps,
                             backend=self.backend, num_threads=self.num_threads)

    def extra_repr(self):
        return f"{super().extra_repr()}, bias={self.bias is not None}, backend={self.backend}"


class RMSNorm(torch.nn.Module):
    """Drop-in for torch.nn.RMSNorm of newer torch (torch 1.13 has none): the same constructor
    arguments and the parameter `weight` (ones), so a state_dict loads either way. eps=None is
    torch's default, the machine epsilon of the compute dtype. Extra keyword arguments: `backend`
    and `num_threads` of tilenorm.torch.rms_norm."""

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
        self.backend = backend
        self.num_threads = num_threads
        self.reset_parameters()

    def reset_parameters(self):
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)

    def forward(self, x):
        return tn.rms_norm(x, self.normalized_shape, self.weight, self.eps, backend=self.backend,
                           num_threads=self.num_threads)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, backend={self.backend}")
