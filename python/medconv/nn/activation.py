"""ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax, LogSoftmax with torch.nn's arguments."""
from __future__ import annotations

import warnings

import numpy as np

from .. import functional as F
from .._backend import _is_cupy
from ..functional import backward as B
from .module import Module


def _copy(input):
    """A copy of the input that an in-place activation is about to overwrite (on its device)."""
    return input.copy() if _is_cupy(input) else np.array(input, copy=True)


class ReLU(Module):
    """max(0, x); inplace=True overwrites the input."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        y = F.relu(input, inplace=self.inplace)
        self._save(output=y)  # relu's gradient reads only the sign, which the output keeps
        return y

    def backward(self, grad_output):
        return B.relu_backward(grad_output, self._saved()["output"])

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        self._save(input=_copy(input) if self.inplace else input)
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def backward(self, grad_output):
        return B.leaky_relu_backward(grad_output, self._saved()["input"], self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        self._save(input=_copy(input) if self.inplace else input)
        return F.elu(input, self.alpha, self.inplace)

    def backward(self, grad_output):
        return B.elu_backward(grad_output, self._saved()["input"], self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x * Phi(x), or its tanh approximation (approximate='tanh')."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be one of {{'none', 'tanh'}}, got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        self._save(input=input)
        return F.gelu(input, approximate=self.approximate)

    def backward(self, grad_output):
        return B.gelu_backward(grad_output, self._saved()["input"], self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, input):
        y = F.sigmoid(input)
        self._save(output=y)
        return y

    def backward(self, grad_output):
        return B.sigmoid_backward(grad_output, output=self._saved()["output"])


class Tanh(Module):
    """The hyperbolic tangent."""

    def forward(self, input):
        y = F.tanh(input)
        self._save(output=y)
        return y

    def backward(self, grad_output):
        return B.tanh_backward(grad_output, output=self._saved()["output"])


def _implicit_dim(name, ndim):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x) / sum(exp(x)) along dim."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = self.dim if self.dim is not None else _implicit_dim("softmax", np.ndim(input))
        y = F.softmax(input, dim=dim)
        self._save(output=y, dim=dim)
        return y

    def backward(self, grad_output):
        ctx = self._saved()
        return B.softmax_backward(grad_output, ctx["output"], ctx["dim"])

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along dim, computed stably."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        dim = self.dim if self.dim is not None else _implicit_dim("log_softmax", np.ndim(input))
        y = F.log_softmax(input, dim=dim)
        self._save(output=y, dim=dim)
        return y

    def backward(self, grad_output):
        ctx = self._saved()
        return B.log_softmax_backward(grad_output, ctx["output"], ctx["dim"])

    def extra_repr(self):
        return f"dim={self.dim}"
