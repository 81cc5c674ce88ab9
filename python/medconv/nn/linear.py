"""Linear, Identity, Flatten, Dropout and Upsample with torch.nn's arguments."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from ..functional import backward as B
from ..functional import extra as E
from . import init
from .conv import _dtype
from .module import Module, Parameter


class Identity(Module):
    """Returns its input; the arguments are ignored, as torch's."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input

    def backward(self, grad_output):
        return grad_output


class Linear(Module):
    """y = x @ weight.T + bias over the last dim; weight (out_features, in_features)."""

    _accepts_input_grad = True

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dt = _dtype(dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(in_features), ...) for the bias, as torch."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        self._save(input=input)
        return F.linear(input, self._get("weight"), self._get("bias"))

    def backward(self, grad_output, input_grad=True):
        gx, gw, gb = B.linear_backward(grad_output, self._saved()["input"], self.weight, self.bias,
                                       output_mask=(input_grad, True, True))
        self._accumulate(self.weight, gw)
        self._accumulate(self.bias, gb)
        return gx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        shape = tuple(np.shape(input))
        nd = len(shape)
        if nd == 0:
            self._save(shape=shape)
            return input.reshape(1)
        s, e = self.start_dim % nd, self.end_dim % nd
        if s > e:
            raise ValueError(f"flatten() has invalid args: start_dim {self.start_dim} cannot come after end_dim "
                             f"{self.end_dim} for an input of {nd} dims")
        self._save(shape=shape)
        new = shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
        return input.reshape(new)

    def backward(self, grad_output):
        return grad_output.reshape(self._saved()["shape"])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Unflattens dim into unflattened_size."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        shape = tuple(np.shape(input))
        d = self.dim % len(shape)
        if int(np.prod(self.unflattened_size)) != shape[d]:
            raise ValueError(f"unflattened_size {self.unflattened_size} does not multiply to dim {self.dim}'s size "
                             f"{shape[d]} (input shape {shape})")
        self._save(shape=shape)
        return input.reshape(shape[:d] + self.unflattened_size + shape[d + 1:])

    def backward(self, grad_output):
        return grad_output.reshape(self._saved()["shape"])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the rest by 1 / (1 - p);
    the masks come from medconv.nn.init's generator (see manual_seed). Identity in eval()."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)
        self.inplace = inplace

    def forward(self, input):
        if not self.training or self.p == 0.0:
            self._save(mask=None)
            return input
        y, keep = E.native_dropout(input, self.p, True, generator=init.default_generator())
        self._save(mask=keep)
        if self.inplace:
            input[...] = y
            return input
        return y

    def backward(self, grad_output):
        mask = self._saved()["mask"]
        if mask is None:
            return grad_output
        return B.dropout_backward(grad_output, mask, self.p)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Upsample(Module):
    """Resamples by `size` or `scale_factor` (nearest, nearest-exact, linear, bilinear, trilinear)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, numbers.Real) else scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def _args(self):
        return dict(size=self.size, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners,
                    recompute_scale_factor=self.recompute_scale_factor)

    def forward(self, input):
        self._save(input=input)
        return E.interpolate(input, **self._args())

    def backward(self, grad_output):
        return B.interpolate_backward(grad_output, self._saved()["input"], **self._args())

    def extra_repr(self):
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"
