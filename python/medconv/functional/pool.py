"""Max, average and adaptive-average pooling with torch.nn.functional's arguments."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, prepare_out, wrap
from ._args import ValidatedCalls, check_bool, check_ndim, int_tuple, window_output_size


def _pool_input(input, nd):
    x, src = as_array(input, "input")
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or C, *spatial")
    return x, src


_WINDOWS = ValidatedCalls()


def _window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated (kernel, stride, padding, dilation, output spatial size), remembered per input shape
    and arguments."""
    key = (nd, tuple(x.shape), repr((kernel_size, stride, padding, dilation, ceil_mode)))
    done = _WINDOWS.get(key)
    if done is None:
        done = _checked_window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode)
        _WINDOWS.put(key, done)
    return done


def _checked_window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = int_tuple(kernel_size, nd, "kernel_size", minimum=1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    stride = int_tuple(stride, nd, "stride", minimum=1)
    padding = int_tuple(padding, nd, "padding", minimum=0)
    dilation = int_tuple(dilation, nd, "dilation", minimum=1)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    for k, p in zip(kernel, padding):
        if 2 * p > k:
            raise ValueError(f"padding should be at most half of kernel_size, got padding={padding}, kernel_size={kernel}")
    spatial = x.shape[x.ndim - nd:]
    out = tuple(
        window_output_size(i, k, 2 * p, s, d, ceil_mode, p)
        for i, k, p, s, d in zip(spatial, kernel, padding, stride, dilation)
    )
    if any(o < 1 for o in out):
        raise ValueError(
            f"output size {out} is too small: input spatial shape {tuple(spatial)}, kernel_size {kernel}, "
            f"stride {stride}, padding {padding}, dilation {dilation}"
        )
    return kernel, stride, padding, dilation, out


def _divisor(divisor_override) -> int:
    """avg_pool's divisor argument: 0 (the window's size or count) for None, else a positive int."""
    if divisor_override is None:
        return 0
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0:
        raise ValueError(f"divisor_override must be None or a positive int, got {divisor_override!r}")
    return int(divisor_override)


def _shape4(shape, nd):
    """(..., *spatial) -> (planes, D, H, W)."""
    lead = len(shape) - nd
    return (math.prod(shape[:lead]),) + (1,) * (3 - nd) + tuple(shape[lead:])


def _as4d(arr, nd):
    """(..., *spatial) -> (planes, D, H, W) view."""
    return arr.reshape(_shape4(arr.shape, nd))


def _pad3(t, nd, fill):
    return (fill,) * (3 - nd) + tuple(t)


_MAX_CALLS = ValidatedCalls()
_AVG_CALLS = ValidatedCalls()


_INDEX_DTYPE = np.dtype(np.int64)  # indices come from the output cache, as the pooled values


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out):
    key = _MAX_CALLS.key((input,), (nd, kernel_size, stride, padding, dilation, ceil_mode, return_indices))
    done = _MAX_CALLS.get(key)
    if done is not None:  # the same shapes and arguments as a validated call
        shape, args, x4, y4 = done
        x = contiguous(input)
        y = prepare_out(out, shape, x.dtype)
        idx = _core.empty(shape, _INDEX_DTYPE) if return_indices else None
        if y.size:
            _core.max_pool(x.reshape(x4), y.reshape(y4), None if idx is None else idx.reshape(y4), *args)
        result = y if out is None else out
        return (result, idx) if return_indices else result
    x, src = _pool_input(input, nd)
    kernel, stride, padding, dilation, osz = _window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.max_pool(nd, x, kernel, stride, padding, dilation, osz, return_indices, out, src)
    x = contiguous(x)
    shape = x.shape[: x.ndim - nd] + osz
    y = prepare_out(out, shape, x.dtype)
    idx = _core.empty(shape, _INDEX_DTYPE) if return_indices else None
    args = (_pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0), _pad3(dilation, nd, 1))
    if y.size:
        _core.max_pool(_as4d(x, nd), _as4d(y, nd), None if idx is None else _as4d(idx, nd), *args)
    _MAX_CALLS.put(key, (shape, args, _shape4(x.shape, nd), _shape4(shape, nd)))
    result = wrap(y, src, out)
    if return_indices:
        return result, wrap(idx, src)
    return result


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, out):
    key = _AVG_CALLS.key((input,), (nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override))
    done = _AVG_CALLS.get(key)
    if done is not None:  # the same shapes and arguments as a validated call
        shape, args, x4, y4 = done
        x = contiguous(input)
        y = prepare_out(out, shape, x.dtype)
        if y.size:
            _core.avg_pool(x.reshape(x4), y.reshape(y4), *args)
        return y if out is None else out
    x, src = _pool_input(input, nd)
    kernel, stride, padding, _, osz = _window_args(nd, x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = _divisor(divisor_override)
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.avg_pool(nd, x, kernel, stride, padding, osz, count_include_pad, divisor, out, src)
    x = contiguous(x)
    shape = x.shape[: x.ndim - nd] + osz
    y = prepare_out(out, shape, x.dtype)
    args = (_pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0), count_include_pad, divisor)
    if y.size:
        _core.avg_pool(_as4d(x, nd), _as4d(y, nd), *args)
    _AVG_CALLS.put(key, (shape, args, _shape4(x.shape, nd), _shape4(shape, nd)))
    return wrap(y, src, out)


def _adaptive_avg_pool(nd, input, output_size, out):
    x, src = _pool_input(input, nd)
    spatial = x.shape[x.ndim - nd:]
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd} ints or None, got {tuple(output_size)!r}")
        sizes = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    else:
        sizes = output_size
    osz = int_tuple(sizes, nd, "output_size", minimum=1)
    if any(s < 1 for s in spatial):
        raise ValueError(f"input spatial dims must be non-empty for adaptive pooling, got shape {tuple(x.shape)}")
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.adaptive_avg_pool(nd, x, osz, out, src)
    x = contiguous(x)
    shape = x.shape[: x.ndim - nd] + osz
    y = prepare_out(out, shape, x.dtype)
    if y.size:
        _core.adaptive_avg_pool(_as4d(x, nd), _as4d(y, nd))
    return wrap(y, src, out)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, out=None):
    """Max over windows of (N, C, L); indices (if asked) index L, as in torch."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, out=None):
    """Max over windows of (N, C, H, W); indices (if asked) index the flattened H*W plane, as in torch."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, out=None):
    """Max over windows of (N, C, D, H, W); indices (if asked) index the flattened D*H*W volume."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """Mean over windows of (N, C, L), as torch.nn.functional.avg_pool1d."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, out)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """Mean over windows of (N, C, H, W), as torch.nn.functional.avg_pool2d."""
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, out)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """Mean over windows of (N, C, D, H, W), as torch.nn.functional.avg_pool3d."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, out)


def adaptive_avg_pool1d(input, output_size, *, out=None):
    """Mean over the windows that split L into output_size parts, as torch."""
    return _adaptive_avg_pool(1, input, output_size, out)


def adaptive_avg_pool2d(input, output_size, *, out=None):
    """Mean over the windows that split (H, W) into output_size parts, as torch."""
    return _adaptive_avg_pool(2, input, output_size, out)


def adaptive_avg_pool3d(input, output_size, *, out=None):
    """Mean over the windows that split (D, H, W) into output_size parts, as torch."""
    return _adaptive_avg_pool(3, input, output_size, out)
