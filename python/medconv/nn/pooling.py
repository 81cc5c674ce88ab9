"""MaxPool1d/2d/3d, AvgPool1d/2d/3d, AdaptiveAvgPool1d/2d/3d with torch.nn's arguments."""
from __future__ import annotations

from .. import functional as F
from ..functional import backward as B
from .module import Module, is_grad_enabled


class _MaxPoolNd(Module):
    _nd = 0

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def _args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation,
                    ceil_mode=self.ceil_mode)

    def forward(self, input):
        # the indices only where asked for, or where backward() will need them
        want_indices = self.return_indices or is_grad_enabled()
        out = getattr(F, f"max_pool{self._nd}d")(input, **self._args(), return_indices=want_indices)
        y, idx = out if want_indices else (out, None)
        self._save(input=input, indices=idx)
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        ctx = self._saved()
        return getattr(B, f"max_pool{self._nd}d_backward")(grad_output, ctx["input"], **self._args(),
                                                             indices=ctx["indices"])

    def extra_repr(self):
        return ("kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}, "
                "ceil_mode={ceil_mode}".format(**self.__dict__))


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L)."""

    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W)."""

    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)


class MaxPool3d(_MaxPoolNd):
    """Max over windows of (N, C, D, H, W)."""

    _nd = 3

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)


class _AvgPoolNd(Module):
    _nd = 0

    def _setup(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _args(self):
        kw = dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                  count_include_pad=self.count_include_pad)
        if self._nd > 1:
            kw["divisor_override"] = self.divisor_override
        return kw

    def forward(self, input):
        self._save(input=input)
        return getattr(F, f"avg_pool{self._nd}d")(input, **self._args())

    def backward(self, grad_output):
        return getattr(B, f"avg_pool{self._nd}d_backward")(grad_output, self._saved()["input"], **self._args())

    def extra_repr(self):
        return "kernel_size={kernel_size}, stride={stride}, padding={padding}".format(**self.__dict__)


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of (N, C, L)."""

    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self._setup(kernel_size, stride, padding, ceil_mode, count_include_pad, None)


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of (N, C, H, W)."""

    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self._setup(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of (N, C, D, H, W)."""

    _nd = 3

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self._setup(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


class _AdaptiveAvgPoolNd(Module):
    _nd = 0

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        y = getattr(F, f"adaptive_avg_pool{self._nd}d")(input, self.output_size)
        self._save(input=input, output_size=tuple(y.shape[-self._nd:]))
        return y

    def backward(self, grad_output):
        ctx = self._saved()
        return getattr(B, f"adaptive_avg_pool{self._nd}d_backward")(grad_output, ctx["input"], ctx["output_size"])

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean over the windows that split L into output_size parts."""

    _nd = 1

    def __init__(self, output_size):
        super().__init__(output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Mean over the windows that split (H, W) into output_size parts (None keeps a dim)."""

    _nd = 2

    def __init__(self, output_size):
        super().__init__(output_size)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Mean over the windows that split (D, H, W) into output_size parts (None keeps a dim)."""

    _nd = 3

    def __init__(self, output_size):
        super().__init__(output_size)
