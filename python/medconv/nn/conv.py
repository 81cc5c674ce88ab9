"""Conv1d/2d/3d and ConvTranspose1d/2d/3d with torch.nn's arguments, weight shapes and init."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from ..functional import backward as B
from ..functional import extra as E
from ..functional._args import int_tuple
from . import init
from .module import Module, Parameter, _as_float_dtype

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _dtype(dtype):
    return np.dtype(np.float32) if dtype is None else _as_float_dtype(dtype)


class _ConvNd(Module):
    _nd = 0
    _transposed = False
    _accepts_input_grad = True

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
               output_padding, dtype):
        nd = self._nd
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {set(PADDING_MODES)}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", minimum=1)
        self.stride = int_tuple(stride, nd, "stride", minimum=1)
        self.dilation = int_tuple(dilation, nd, "dilation", minimum=1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = int_tuple(padding, nd, "padding", minimum=0)
        self.output_padding = int_tuple(output_padding, nd, "output_padding", minimum=0)
        self.padding_mode = padding_mode
        dt = _dtype(dtype)
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.kernel_size):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class _Conv(_ConvNd):
    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def forward(self, input):
        self._save(input=input)
        return getattr(F, f"conv{self._nd}d")(input, self._get("weight"), self._get("bias"), **self._args())

    def backward(self, grad_output, input_grad=True):
        x = self._saved()["input"]
        gx, gw, gb = getattr(B, f"conv{self._nd}d_backward")(
            grad_output, x, self.weight, self.bias, **self._args(), output_mask=(input_grad, True, True))
        self._accumulate(self.weight, gw)
        self._accumulate(self.bias, gb)
        return gx


class Conv1d(_Conv):
    """1D convolution over (N, C, L); weight (out_channels, in_channels/groups, kL)."""

    _nd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, 0,
                    dtype)


class Conv2d(_Conv):
    """2D convolution over (N, C, H, W); weight (out_channels, in_channels/groups, kH, kW)."""

    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, 0,
                    dtype)


class Conv3d(_Conv):
    """3D convolution over (N, C, D, H, W); weight (out_channels, in_channels/groups, kD, kH, kW)."""

    _nd = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, 0,
                    dtype)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def _output_padding(self, input, output_size):
        """torch's rule: the output_padding that gives output_size (None: self.output_padding)."""
        if output_size is None:
            return self.output_padding
        nd = self._nd
        output_size = tuple(output_size)
        if len(output_size) == nd + 2:
            output_size = output_size[2:]
        if len(output_size) != nd:
            raise ValueError(f"output_size must have {nd} or {nd + 2} elements, got {len(output_size)}")
        spatial = np.shape(input)[-nd:]
        result = []
        for i in range(nd):
            min_size = ((spatial[i] - 1) * self.stride[i] - 2 * self.padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            max_size = min_size + self.stride[i] - 1
            if not min_size <= output_size[i] <= max_size:
                raise ValueError(f"requested an output size of {output_size}, but valid sizes range from {min_size} "
                                 f"to {max_size} (for an input of {tuple(spatial)})")
            result.append(output_size[i] - min_size)
        return tuple(result)

    def _args(self, output_padding):
        return dict(stride=self.stride, padding=self.padding, output_padding=output_padding, groups=self.groups,
                    dilation=self.dilation)

    def forward(self, input, output_size=None):
        op = self._output_padding(input, output_size)
        self._save(input=input, output_padding=op)
        return getattr(E, f"conv_transpose{self._nd}d")(input, self.weight, self.bias, **self._args(op))

    def backward(self, grad_output, input_grad=True):
        ctx = self._saved()
        gx, gw, gb = getattr(B, f"conv_transpose{self._nd}d_backward")(
            grad_output, ctx["input"], self.weight, self.bias, **self._args(ctx["output_padding"]),
            output_mask=(input_grad, True, True))
        self._accumulate(self.weight, gw)
        self._accumulate(self.bias, gb)
        return gx


def _check_transposed(padding, padding_mode):
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or a tuple of ints for transposed convolutions, got {padding!r}")
    if padding_mode != "zeros":
        raise ValueError(f"only padding_mode='zeros' is supported for transposed convolutions, got {padding_mode!r}")


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1D convolution; weight (in_channels, out_channels/groups, kL)."""

    _nd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_transposed(padding, padding_mode)
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                    output_padding, dtype)


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2D convolution; weight (in_channels, out_channels/groups, kH, kW)."""

    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_transposed(padding, padding_mode)
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                    output_padding, dtype)


class ConvTranspose3d(_ConvTranspose):
    """Transposed 3D convolution; weight (in_channels, out_channels/groups, kD, kH, kW)."""

    _nd = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _check_transposed(padding, padding_mode)
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                    output_padding, dtype)
