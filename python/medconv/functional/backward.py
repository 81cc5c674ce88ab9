"""Gradients of medconv.functional's ops, as torch autograd computes them.

Each `<op>_backward(grad_output, <the forward's arguments>)` returns the gradient of the op's
input, or a tuple (grad_input, grad_weight, grad_bias) for ops with parameters (grad_bias is
None without a bias). grad_output must have the forward output's shape and the input's dtype.
Results are of grad_output's kind (numpy in, numpy out; a torch CPU tensor in, a tensor out). GPU
arrays (CuPy, or torch CUDA tensors through DLPack) run in medconv._gpu and come back on the GPU;
mixing CPU and GPU arrays in one call is a TypeError.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, on_gpu, same_dtype, wrap
from ._args import check_bool, check_ndim, check_number, int_tuple, normalize_dim
from .conv import PADDING_MODES, _padding_pairs
from .extra import (
    _as4d, _bn_input, _bn_vector, _conv_transpose_args, _interp_call, _interpolate_args, _pad3, _to5d, batch_stats,
)
from .pad import _check_pad, pad_array
from .pool import _pool_input, _window_args


def _grad(grad_output, shape, dtype, name="grad_output"):
    g, src = as_array(grad_output, name)
    if g.dtype != dtype:
        raise TypeError(f"{name} has dtype {g.dtype} but input has dtype {np.dtype(dtype)}; convert one to match")
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(g.shape)}, but the forward output has shape {tuple(shape)}")
    return contiguous(g), src


def _wrap_all(src, *arrays):
    return tuple(None if a is None else wrap(a, src) for a in arrays)


def _check_mask(output_mask):
    if not (isinstance(output_mask, (tuple, list)) and len(output_mask) == 3):
        raise ValueError(f"output_mask must be 3 bools (grad_input, grad_weight, grad_bias), got {output_mask!r}")
    return tuple(check_bool(m, "output_mask") for m in output_mask)


# ------------------------------------------------------------------------ pad


def _pad_before_after(pad):
    before, after = [0, 0, 0], [0, 0, 0]
    for i in range(len(pad) // 2):
        before[2 - i], after[2 - i] = pad[2 * i], pad[2 * i + 1]
    return before, after


def _pad_backward_array(g: np.ndarray, shape, pad, mode) -> np.ndarray:
    """The gradient of pad_array(x of `shape`, pad, mode) given its output's gradient g."""
    npad = len(pad) // 2
    before, after = _pad_before_after(pad)
    lead = tuple(shape[: len(shape) - npad])
    tail = (1,) * (3 - npad) + tuple(shape[len(shape) - npad:])
    gx = np.empty(shape, dtype=g.dtype)
    if gx.size:
        outer = int(np.prod(lead, dtype=np.int64))
        g_tail = tuple(t + b + a for t, b, a in zip(tail, before, after))
        _core.pad_backward(g.reshape((outer,) + g_tail), gx.reshape((outer,) + tail), before, after,
                           _core.PAD_MODES[mode])
    return gx


def pad_backward(grad_output, input, pad, mode="constant", value=None):
    """The gradient of pad(input, pad, mode, value); `input` may be the input or its shape."""
    from .pad import PAD_MODES

    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu.pad_backward(grad_output, input, pad, mode, value)
    if isinstance(input, (tuple, list)):
        shape = tuple(int(s) for s in input)
        dtype = as_array(grad_output, "grad_output")[0].dtype
    else:
        x, _ = as_array(input, "input")
        shape, dtype = tuple(x.shape), x.dtype
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {set(PAD_MODES)}, got {mode!r}")
    p = _check_pad(pad, len(shape), mode, shape)
    before, after = _pad_before_after(p)
    npad = len(p) // 2
    out_shape = list(shape)
    for i in range(npad):
        out_shape[len(shape) - 1 - i] += p[2 * i] + p[2 * i + 1]
    g, src = _grad(grad_output, out_shape, dtype)
    return wrap(_pad_backward_array(g, shape, p, mode), src)


# ------------------------------------------------------------------------ convolution


def _conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode):
    """Validated (pairs, stride, dilation, groups, output spatial size) of conv{nd}d on batched x."""
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {set(PADDING_MODES)}, got {padding_mode!r}")
    stride = int_tuple(stride, nd, "stride", minimum=1)
    dilation = int_tuple(dilation, nd, "dilation", minimum=1)
    c = x.shape[1]
    oc, cg = w.shape[:2]
    kernel = tuple(w.shape[2:])
    if oc == 0 or cg == 0 or any(k < 1 for k in kernel):
        raise ValueError(f"weight must have non-zero sizes, got shape {tuple(w.shape)}")
    if c != cg * groups:
        raise ValueError(f"weight of shape {tuple(w.shape)} with groups={groups} expects {cg * groups} input channels, "
                         f"but input of shape {tuple(x.shape)} has {c}")
    if oc % groups:
        raise ValueError(f"out_channels ({oc}, weight.shape[0]) must be divisible by groups ({groups})")
    pairs = _padding_pairs(padding, nd, kernel, dilation, stride)
    spatial = x.shape[2:]
    for i, (size, (lo, hi), k, d) in enumerate(zip(spatial, pairs, kernel, dilation)):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"kernel size {kernel} (dilation {dilation}) is larger than the padded input: "
                             f"input spatial shape {tuple(spatial)}, padding {pairs}")
        if padding_mode == "reflect" and (lo >= size or hi >= size):
            raise ValueError(f"padding {max(lo, hi)} with padding_mode='reflect' must be smaller than the input size "
                             f"{size} (dim {i + 2})")
        if padding_mode == "circular" and (lo > size or hi > size):
            raise ValueError(f"padding {max(lo, hi)} with padding_mode='circular' must be at most the input size "
                             f"{size} (dim {i + 2})")
    out = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                for size, (lo, hi), k, d, s in zip(spatial, pairs, kernel, dilation, stride))
    return pairs, stride, dilation, groups, out


def _conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode, output_mask):
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu._conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups,
                                   padding_mode, output_mask)
    x, _ = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    same_dtype(w, x, "weight")
    check_ndim(w, (nd + 2,), "weight", "out_channels, in_channels/groups, *kernel_size")
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or unbatched C, *spatial")
    need_x, need_w, need_b = _check_mask(output_mask)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    pairs, stride, dilation, groups, osz = _conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode)
    oc = w.shape[0]
    out_shape = (x.shape[0], oc) + osz
    g, src = _grad(grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x = contiguous(x)
    w = contiguous(w)
    padded = padding_mode != "zeros" and any(lo or hi for lo, hi in pairs)
    pad_list = [p for pair in reversed(pairs) for p in pair]
    if padded:
        xp = pad_array(x, pad_list, padding_mode, 0.0) if need_w else None
        pad3 = (0,) * 3
        padded_shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pairs))
    else:
        xp = x
        pad3 = (0,) * (3 - nd) + tuple(lo for lo, _ in pairs)
        padded_shape = x.shape
    one = (1,) * (3 - nd)
    stride3, dilation3 = one + stride, one + dilation
    gx = gw = gb = None
    if need_x:
        gxp = np.empty(padded_shape, x.dtype)
        if gxp.size:
            if g.size:
                _core.conv_backward_input(_to5d(g, nd), _to5d(w, nd), _to5d(gxp, nd), stride3, pad3, dilation3, groups)
            else:
                gxp.fill(0)
        gx = _pad_backward_array(gxp, x.shape, pad_list, padding_mode) if padded else gxp
        if unbatched:
            gx = gx[0]
    if need_w:
        gw = np.zeros(w.shape, x.dtype)
        if g.size:
            _core.conv_backward_weight(_to5d(xp, nd), _to5d(g, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = np.zeros(oc, x.dtype)
        if g.size:
            _core.channel_sum(g, gb)
    return _wrap_all(src, gx, gw, gb)


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv1d; grad_bias is None when bias is None.
    output_mask skips the gradients not wanted (they come back as None)."""
    return _conv_backward(1, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv2d; grad_bias is None when bias is None."""
    return _conv_backward(2, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv3d; grad_bias is None when bias is None."""
    return _conv_backward(3, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def _conv_transpose_backward(nd, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation,
                             output_mask):
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu._conv_transpose_backward(nd, grad_output, input, weight, bias, stride, padding, output_padding,
                                             groups, dilation, output_mask)
    x, _ = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    need_x, need_w, need_b = _check_mask(output_mask)
    _, stride, padding, _, groups, dilation, cout, osz = _conv_transpose_args(
        nd, x, w, bias, stride, padding, output_padding, groups, dilation)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    out_shape = (x.shape[0], cout) + osz
    g, src = _grad(grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x = contiguous(x)
    w = contiguous(w)
    one = (1,) * (3 - nd)
    stride3, pad3, dilation3 = one + stride, (0,) * (3 - nd) + padding, one + dilation
    gx = gw = gb = None
    if need_x:  # the transposed conv's input gradient is the conv of grad_output
        gx = np.empty(x.shape, x.dtype)
        if gx.size:
            _core.conv_forward(_to5d(g, nd), _to5d(w, nd), None, _to5d(gx, nd), stride3, pad3, dilation3, groups)
        if unbatched:
            gx = gx[0]
    if need_w:  # the conv weight gradient with grad_output as the conv's input
        gw = np.zeros(w.shape, x.dtype)
        if g.size and x.size:
            _core.conv_backward_weight(_to5d(g, nd), _to5d(x, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = np.zeros(cout, x.dtype)
        if g.size:
            _core.channel_sum(g, gb)
    return _wrap_all(src, gx, gw, gb)


def conv_transpose1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv_transpose1d."""
    return _conv_transpose_backward(1, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


def conv_transpose2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv_transpose2d."""
    return _conv_transpose_backward(2, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


def conv_transpose3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv_transpose3d."""
    return _conv_transpose_backward(3, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


# ------------------------------------------------------------------------ pooling


def _planes(a, nd):
    return _as4d(a, nd)


def _max_pool_backward(nd, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices):
    if on_gpu(grad_output, input, indices):
        from .. import _gpu
        return _gpu._max_pool_backward(nd, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode,
                                       indices)
    x, _ = _pool_input(input, nd)
    kernel, stride, padding, dilation, osz = _window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = x.shape[: x.ndim - nd] + osz
    g, src = _grad(grad_output, shape, x.dtype)
    if indices is None:
        x = contiguous(x)
        idx = np.empty(shape, np.int64)
        if idx.size:
            _core.max_pool(_planes(x, nd), _planes(np.empty(shape, x.dtype), nd), _planes(idx, nd),
                           _pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0), _pad3(dilation, nd, 1))
    else:
        idx, _ = as_array(indices, "indices", allow_int=True)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array (from return_indices=True), got dtype {idx.dtype}")
        if tuple(idx.shape) != tuple(shape):
            raise ValueError(f"indices has shape {tuple(idx.shape)}, but the forward output has shape {tuple(shape)}")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
    gx = np.empty(x.shape, x.dtype)
    if gx.size:
        planes = gx.size // int(np.prod(x.shape[x.ndim - nd:]))
        _core.max_pool_backward(g.reshape(planes, -1), idx.reshape(planes, -1), gx.reshape(planes, -1))
    return wrap(gx, src)


def max_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    """The gradient of max_pool1d: grad_output goes to each window's max (the `indices` the forward
    returned with return_indices=True, recomputed when None)."""
    return _max_pool_backward(1, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    """The gradient of max_pool2d (see max_pool1d_backward)."""
    return _max_pool_backward(2, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def max_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    """The gradient of max_pool3d (see max_pool1d_backward)."""
    return _max_pool_backward(3, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def _avg_pool_backward(nd, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu._avg_pool_backward(nd, grad_output, input, kernel_size, stride, padding, ceil_mode,
                                       count_include_pad, divisor_override)
    x, _ = _pool_input(input, nd)
    kernel, stride, padding, _, osz = _window_args(nd, x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    if divisor_override is None:
        divisor = 0
    elif isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0:
        raise ValueError(f"divisor_override must be None or a positive int, got {divisor_override!r}")
    else:
        divisor = int(divisor_override)
    g, src = _grad(grad_output, x.shape[: x.ndim - nd] + osz, x.dtype)
    gx = np.empty(x.shape, x.dtype)
    if gx.size:
        _core.avg_pool_backward(_planes(g, nd), _planes(gx, nd), _pad3(kernel, nd, 1), _pad3(stride, nd, 1),
                                _pad3(padding, nd, 0), count_include_pad, divisor)
    return wrap(gx, src)


def avg_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """The gradient of avg_pool1d."""
    return _avg_pool_backward(1, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """The gradient of avg_pool2d."""
    return _avg_pool_backward(2, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def avg_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """The gradient of avg_pool3d."""
    return _avg_pool_backward(3, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def _adaptive_avg_pool_backward(nd, grad_output, input, output_size):
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu._adaptive_avg_pool_backward(nd, grad_output, input, output_size)
    x, _ = _pool_input(input, nd)
    spatial = x.shape[x.ndim - nd:]
    if output_size is None:
        g0, _ = as_array(grad_output, "grad_output")
        if g0.ndim != x.ndim:
            raise ValueError(f"grad_output must have input's number of dims {x.ndim}, got shape {tuple(g0.shape)}")
        output_size = tuple(g0.shape[g0.ndim - nd:])
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd} ints or None, got {tuple(output_size)!r}")
        output_size = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    osz = int_tuple(output_size, nd, "output_size", minimum=1)
    if any(s < 1 for s in spatial):
        raise ValueError(f"input spatial dims must be non-empty for adaptive pooling, got shape {tuple(x.shape)}")
    g, src = _grad(grad_output, x.shape[: x.ndim - nd] + osz, x.dtype)
    gx = np.empty(x.shape, x.dtype)
    if gx.size:
        _core.adaptive_avg_pool_backward(_planes(g, nd), _planes(gx, nd))
    return wrap(gx, src)


def adaptive_avg_pool1d_backward(grad_output, input, output_size=None):
    """The gradient of adaptive_avg_pool1d (output_size defaults to grad_output's)."""
    return _adaptive_avg_pool_backward(1, grad_output, input, output_size)


def adaptive_avg_pool2d_backward(grad_output, input, output_size=None):
    """The gradient of adaptive_avg_pool2d (output_size defaults to grad_output's)."""
    return _adaptive_avg_pool_backward(2, grad_output, input, output_size)


def adaptive_avg_pool3d_backward(grad_output, input, output_size=None):
    """The gradient of adaptive_avg_pool3d (output_size defaults to grad_output's)."""
    return _adaptive_avg_pool_backward(3, grad_output, input, output_size)


# ------------------------------------------------------------------------ activations


def _unary_backward(name, grad_output, input, alpha=0.0, output=None):
    if on_gpu(grad_output, input, output):
        from .. import _gpu
        return _gpu._unary_backward(name, grad_output, input, alpha, output)
    if input is None and output is None:
        raise ValueError("pass the forward's input (or, for sigmoid and tanh, its output=)")
    ref = input if input is not None else output
    r, _ = as_array(ref, "input" if input is not None else "output")
    g, src = _grad(grad_output, r.shape, r.dtype)
    x = contiguous(r) if input is not None else None
    y = None
    if output is not None:
        y, _ = as_array(output, "output")
        same_dtype(y, r, "output")
        if y.shape != r.shape:
            raise ValueError(f"output has shape {tuple(y.shape)}, but input has shape {tuple(r.shape)}")
        y = contiguous(y)
    gx = np.empty(r.shape, r.dtype)
    if gx.size:
        _core.unary_backward(_core.UNARY_OPS[name], x, y, g, gx, alpha)
    return wrap(gx, src)


def relu_backward(grad_output, input):
    """grad_output where input > 0 (the forward's output may be passed as input), else 0."""
    return _unary_backward("relu", grad_output, input)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """grad_output where input > 0, else negative_slope * grad_output."""
    return _unary_backward("leaky_relu", grad_output, input, check_number(negative_slope, "negative_slope"))


def elu_backward(grad_output, input, alpha=1.0):
    """grad_output where input > 0, else grad_output * alpha * exp(input)."""
    return _unary_backward("elu", grad_output, input, check_number(alpha, "alpha"))


def sigmoid_backward(grad_output, input=None, *, output=None):
    """grad_output * s * (1 - s), s = sigmoid(input) (or the forward's output=, if given)."""
    return _unary_backward("sigmoid", grad_output, None if output is not None else input, output=output)


def tanh_backward(grad_output, input=None, *, output=None):
    """grad_output * (1 - t^2), t = tanh(input) (or the forward's output=, if given)."""
    return _unary_backward("tanh", grad_output, None if output is not None else input, output=output)


def gelu_backward(grad_output, input, approximate="none"):
    """The gradient of gelu (exact or tanh approximation), torch's formulas."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be one of {{'none', 'tanh'}}, got {approximate!r}")
    return _unary_backward("gelu" if approximate == "none" else "gelu_tanh", grad_output, input)


def _softmax_backward(grad_output, output, dim, log):
    if on_gpu(grad_output, output):
        from .. import _gpu
        return _gpu._softmax_backward(grad_output, output, dim, log)
    y, _ = as_array(output, "output")
    if dim is None:
        raise ValueError("dim must be given (the dim the forward used)")
    d = normalize_dim(dim, y.ndim)
    g, src = _grad(grad_output, y.shape, y.dtype)
    y = contiguous(y)
    shape = y.shape if y.ndim else (1,)
    outer = int(np.prod(shape[:d], dtype=np.int64))
    inner = int(np.prod(shape[d + 1:], dtype=np.int64))
    gx = np.empty(y.shape, y.dtype)
    if gx.size:
        _core.softmax_backward(y, g, gx, outer, shape[d], inner, log)
    return wrap(gx, src)


def softmax_backward(grad_output, output, dim):
    """output * (grad_output - sum(grad_output * output, dim)); `output` is softmax's result."""
    return _softmax_backward(grad_output, output, dim, False)


def log_softmax_backward(grad_output, output, dim):
    """grad_output - exp(output) * sum(grad_output, dim); `output` is log_softmax's result."""
    return _softmax_backward(grad_output, output, dim, True)


def maxout_backward(grad_output, input, pieces, dim=1):
    """grad_output goes to the piece that won each maxout (the first maximum; NaN wins)."""
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu.maxout_backward(grad_output, input, pieces, dim)
    x, _ = as_array(input, "input")
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"pieces must be a positive int, got {pieces!r}")
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dim for maxout")
    d = normalize_dim(dim, x.ndim)
    c = x.shape[d]
    if c % pieces:
        raise ValueError(f"input has {c} channels along dim {d} (shape {tuple(x.shape)}), not divisible by pieces={pieces}")
    shape = x.shape[:d] + (c // pieces,) + x.shape[d + 1:]
    g, src = _grad(grad_output, shape, x.dtype)
    x = contiguous(x)
    gx = np.empty(x.shape, x.dtype)
    if gx.size:
        outer = int(np.prod(x.shape[:d], dtype=np.int64))
        inner = int(np.prod(x.shape[d + 1:], dtype=np.int64))
        _core.maxout_backward(x, g, gx, outer, c // pieces, int(pieces), inner)
    return wrap(gx, src)


def linear_backward(grad_output, input, weight, bias=None, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of linear: grad_output @ weight, grad_output^T @ input, sum."""
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu.linear_backward(grad_output, input, weight, bias, output_mask=output_mask)
    x, _ = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    same_dtype(w, x, "weight")
    need_x, need_w, need_b = _check_mask(output_mask)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"input's last dim must equal in_features={w.shape[1]} (weight shape {tuple(w.shape)}), "
                         f"got input shape {tuple(x.shape)}")
    n_out, k = w.shape
    g, src = _grad(grad_output, x.shape[:-1] + (n_out,), x.dtype)
    m = int(np.prod(x.shape[:-1], dtype=np.int64))
    g2 = g.reshape(m, n_out)
    gx = gw = gb = None
    if need_x:
        gx = np.zeros(x.shape, x.dtype)
        if gx.size and n_out:
            _core.linear_backward_input(g2, contiguous(w), gx.reshape(m, k))
    want_b = need_b and bias is not None
    if need_w or want_b:
        gw_buf = np.zeros(w.shape, x.dtype)
        gb = np.zeros(n_out, x.dtype) if want_b else None
        if m and n_out:
            _core.linear_backward_weight(g2, contiguous(x).reshape(m, k), gw_buf, gb)
        gw = gw_buf if need_w else None
    return _wrap_all(src, gx, gw, gb)


# ------------------------------------------------------------------------ interpolate, batch norm, dropout


def interpolate_backward(grad_output, input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                         recompute_scale_factor=None, antialias=False):
    """The gradient of interpolate with the same arguments (`input` may be the input or its shape)."""
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu.interpolate_backward(grad_output, input, size, scale_factor, mode, align_corners,
                                         recompute_scale_factor, antialias)
    if isinstance(input, (tuple, list)):
        g0, _ = as_array(grad_output, "grad_output")
        x = np.empty(tuple(int(s) for s in input), g0.dtype)
    else:
        x, _ = as_array(input, "input")
    nd, osz, scales, kind, align_corners = _interpolate_args(
        x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if kind == "area":
        return _adaptive_avg_pool_backward(nd, grad_output, x, osz)
    g, src = _grad(grad_output, x.shape[:2] + osz, x.dtype)
    gx = np.empty(x.shape, x.dtype)
    if gx.size:
        _interp_call(_core.interpolate_backward, g, gx, nd, kind, align_corners, scales)
    return wrap(gx, src)


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-05, *, save_mean=None, save_invstd=None,
                        output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of batch_norm with the same arguments. The statistics the
    forward used: save_mean / save_invstd when given, else the batch's (recomputed from input) in
    training, the running ones otherwise. grad_weight / grad_bias are None without weight / bias."""
    if on_gpu(grad_output, input):
        from .. import _gpu
        return _gpu.batch_norm_backward(grad_output, input, running_mean, running_var, weight, bias, training,
                                        momentum, eps, save_mean=save_mean, save_invstd=save_invstd,
                                        output_mask=output_mask)
    x, _ = as_array(input, "input")
    x3 = _bn_input(x)
    n, c, s = x3.shape
    training = check_bool(training, "training")
    eps = check_number(eps, "eps")
    need_x, need_w, need_b = _check_mask(output_mask)
    w = _bn_vector(weight, "weight", c, x)
    if save_mean is not None and save_invstd is not None:
        mean = contiguous(_bn_vector(save_mean, "save_mean", c, x))
        invstd = contiguous(_bn_vector(save_invstd, "save_invstd", c, x))
    elif training:
        mean, _, invstd = batch_stats(x3, eps)
    else:
        rm = _bn_vector(running_mean, "running_mean", c, x)
        rv = _bn_vector(running_var, "running_var", c, x)
        if rm is None or rv is None:
            raise ValueError("running_mean and running_var are required when training=False")
        mean = contiguous(rm)
        invstd = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).astype(x.dtype)
    g, src = _grad(grad_output, x.shape, x.dtype)
    gx = np.empty(x.shape, x.dtype) if need_x else None
    gw = np.zeros(c, x.dtype) if need_w and w is not None else None
    gb = np.zeros(c, x.dtype) if need_b and bias is not None else None
    if x.size:
        _core.batch_norm_backward(x3, g.reshape(n, c, s), mean, invstd, None if w is None else contiguous(w), training,
                                  None if gx is None else gx.reshape(n, c, s), gw, gb)
    return _wrap_all(src, gx, gw, gb)


def dropout_backward(grad_output, mask, p=0.5):
    """grad_output * mask / (1 - p), mask = the keep mask of native_dropout."""
    if on_gpu(grad_output, mask):
        from .. import _gpu
        return _gpu.dropout_backward(grad_output, mask, p)
    g, src = as_array(grad_output, "grad_output")
    k = mask if isinstance(mask, np.ndarray) else np.asarray(mask)
    if tuple(k.shape) != tuple(g.shape):
        raise ValueError(f"mask has shape {tuple(k.shape)}, grad_output has shape {tuple(g.shape)}")
    p = check_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    scale = g.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    gx = np.multiply(g, k, dtype=g.dtype)
    gx *= scale
    return wrap(gx, src)


__all__ = [
    "conv1d_backward", "conv2d_backward", "conv3d_backward",
    "conv_transpose1d_backward", "conv_transpose2d_backward", "conv_transpose3d_backward",
    "pad_backward",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "relu_backward", "leaky_relu_backward", "elu_backward", "sigmoid_backward", "tanh_backward", "gelu_backward",
    "softmax_backward", "log_softmax_backward", "maxout_backward", "linear_backward",
    "interpolate_backward", "batch_norm_backward", "dropout_backward",
]
