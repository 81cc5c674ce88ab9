"""conv1d / conv2d / conv3d with torch.nn.functional's arguments and semantics."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, prepare_out, same_dtype, wrap
from ._args import ValidatedCalls, check_ndim, int_tuple
from .pad import pad_array

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
ACTIVATIONS = (None, "relu")


def _padding_pairs(padding, nd, kernel, dilation, stride):
    """Per spatial dim (before, after) zero-or-mode padding from an int, a tuple, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride}")
            pairs = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return pairs
        raise ValueError(f"padding must be an int, a tuple of {nd} ints, 'same' or 'valid', got {padding!r}")
    values = int_tuple(padding, nd, "padding", minimum=0)
    return [(p, p) for p in values]


def _shape5(shape, nd):
    return tuple(shape[:2]) + (1,) * (3 - nd) + tuple(shape[2:])


def _to5d(arr, nd):
    return arr.reshape(_shape5(arr.shape, nd))


def run_cached(kernel, plan, input, weight, bias, out):
    """A call with the shapes and arguments of a checked one (numpy arrays): plan = (output shape,
    the kernel's arguments, the 5D shapes of input, weight and output)."""
    shape, args, x5, w5, y5 = plan
    y = prepare_out(out, shape, input.dtype)
    if y.size:
        kernel(contiguous(input).reshape(x5), contiguous(weight).reshape(w5), None if bias is None else contiguous(bias),
               y.reshape(y5), *args)
    return y if out is None else out


_CALLS = ValidatedCalls()


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, activation, out):
    key = None
    if padding_mode == "zeros" and getattr(input, "ndim", 0) == nd + 2:  # batched, unpadded: cacheable
        key = _CALLS.key((input, weight, bias), (nd, stride, padding, dilation, groups, activation))
    plan = _CALLS.get(key)
    if plan is not None:
        return run_cached(_core.conv_forward, plan, input, weight, bias, out)
    x, src = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    same_dtype(w, x, "weight")
    check_ndim(w, (nd + 2,), "weight", "out_channels, in_channels/groups, *kernel_size")
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or unbatched C, *spatial")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {set(PADDING_MODES)}, got {padding_mode!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    stride = int_tuple(stride, nd, "stride", minimum=1)
    dilation = int_tuple(dilation, nd, "dilation", minimum=1)
    n, c = x.shape[:2]
    oc, cg = w.shape[:2]
    kernel = tuple(w.shape[2:])
    if oc == 0 or cg == 0 or any(k < 1 for k in kernel):
        raise ValueError(f"weight must have non-zero sizes, got shape {tuple(w.shape)}")
    if c != cg * groups:
        raise ValueError(
            f"weight of shape {tuple(w.shape)} with groups={groups} expects {cg * groups} input channels, "
            f"but input of shape {tuple(x.shape)} has {c}"
        )
    if oc % groups:
        raise ValueError(f"out_channels ({oc}, weight.shape[0]) must be divisible by groups ({groups})")
    if bias is not None:
        b, _ = as_array(bias, "bias")
        same_dtype(b, x, "bias")
        if b.shape != (oc,):
            raise ValueError(f"bias must have shape ({oc},) for weight of shape {tuple(w.shape)}, got {tuple(b.shape)}")
        b = contiguous(b)
    else:
        b = None
    pairs = _padding_pairs(padding, nd, kernel, dilation, stride)
    spatial = x.shape[2:]
    for i, (size, (lo, hi), k, d) in enumerate(zip(spatial, pairs, kernel, dilation)):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(
                f"kernel size {kernel} (dilation {dilation}) is larger than the padded input: "
                f"input spatial shape {tuple(spatial)}, padding {[p for p in pairs]}"
            )
        if padding_mode == "reflect" and (lo >= size or hi >= size):
            raise ValueError(f"padding {max(lo, hi)} with padding_mode='reflect' must be smaller than the input size {size} (dim {i + 2})")
        if padding_mode == "circular" and (lo > size or hi > size):
            raise ValueError(f"padding {max(lo, hi)} with padding_mode='circular' must be at most the input size {size} (dim {i + 2})")
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.conv(nd, x, w, b, stride, pairs, dilation, groups, padding_mode, activation, unbatched, out, src)
    x = contiguous(x)
    w = contiguous(w)
    if padding_mode != "zeros" and any(lo or hi for lo, hi in pairs):
        x = pad_array(x, [p for pair in reversed(pairs) for p in pair], padding_mode, 0.0)
        pairs = [(0, 0)] * nd
        spatial = x.shape[2:]
    out_spatial = tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, (lo, hi), k, d, s in zip(spatial, pairs, kernel, dilation, stride)
    )
    shape = (n, oc) + out_spatial
    y = prepare_out(None if unbatched else out, shape, x.dtype)
    pad3 = (0,) * (3 - nd) + tuple(lo for lo, _ in pairs)
    one = (1,) * (3 - nd)
    args = (one + stride, pad3, one + dilation, groups, ACTIVATIONS.index(activation))
    if y.size:
        _core.conv_forward(_to5d(x, nd), _to5d(w, nd), b, _to5d(y, nd), *args)
    if key is not None:
        _CALLS.put(key, (shape, args, _shape5(x.shape, nd), _shape5(w.shape, nd), _shape5(shape, nd)))
    if unbatched:
        y = y[0]
        if out is not None:
            prepare_out(out, y.shape, y.dtype)[...] = y
    return wrap(y, src, out)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", *,
           activation=None, out=None):
    """1D convolution over (N, C, L). Like torch.nn.functional.conv1d, plus padding_mode,
    a fused `activation` (None or "relu") and `out=`."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode, activation, out)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", *,
           activation=None, out=None):
    """2D convolution over (N, C, H, W). Like torch.nn.functional.conv2d, plus padding_mode,
    a fused `activation` (None or "relu") and `out=`."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode, activation, out)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", *,
           activation=None, out=None):
    """3D convolution over (N, C, D, H, W). Like torch.nn.functional.conv3d, plus padding_mode,
    a fused `activation` (None or "relu") and `out=`."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode, activation, out)
