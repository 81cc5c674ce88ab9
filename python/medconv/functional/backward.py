"""Gradients of medconv.functional's ops, as torch autograd computes them.

Each `<op>_backward(grad_output, <the forward's arguments>)` returns the gradient of the op's
input, or a tuple (grad_input, grad_weight, grad_bias) for ops with parameters (grad_bias is
None without a bias). grad_output must have the forward output's shape and the input's dtype.
Results are of grad_output's kind (numpy in, numpy out; a torch CPU tensor in, a tensor out). GPU
arrays (CuPy, or torch CUDA tensors through DLPack) run on medconv._gpu's kernels and come back on
the GPU (functional._kernels: the same validation and shapes, the device's kernels); mixing CPU and
GPU arrays in one call is a TypeError.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, on_gpu, same_dtype
from ._args import ValidatedCalls, check_bool, check_ndim, check_number, int_tuple, normalize_dim
from ._kernels import kernels
from .conv import PADDING_MODES, _padding_pairs
from .extra import _bn_input, _bn_vector, _conv_transpose_args, _interp_call, _interpolate_args, _to5d
from .pad import _check_pad
from .pool import _as4d, _divisor, _pad3, _window_args


def _input(dev, input, name="input"):
    """An array argument of the forward, on the device of the call."""
    x, _ = as_array(input, name)
    dev.check_device(x, name, "grad_output")
    return x


def _grad(dev, grad_output, shape, dtype, name="grad_output"):
    g, src = as_array(grad_output, name)
    dev.check_device(g, name, "the call")
    if g.dtype != dtype:
        raise TypeError(f"{name} has dtype {g.dtype} but input has dtype {np.dtype(dtype)}; convert one to match")
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(g.shape)}, but the forward output has shape {tuple(shape)}")
    return contiguous(g), src


def _wrap_all(dev, src, *arrays):
    return tuple(None if a is None else dev.wrap(a, src) for a in arrays)


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


def _pad_backward_array(dev, g, shape, pad, mode):
    """The gradient of pad_array(x of `shape`, pad, mode) given its output's gradient g (C-contiguous)."""
    npad = len(pad) // 2
    before, after = _pad_before_after(pad)
    lead = tuple(shape[: len(shape) - npad])
    tail = (1,) * (3 - npad) + tuple(shape[len(shape) - npad:])
    gx = dev.empty(shape, g.dtype)
    if gx.size:
        outer = math.prod(lead)
        g_tail = tuple(t + b + a for t, b, a in zip(tail, before, after))
        dev.pad_backward(g.reshape((outer,) + g_tail), gx.reshape((outer,) + tail), before, after,
                         _core.PAD_MODES[mode])
    return gx


def pad_backward(grad_output, input, pad, mode="constant", value=None):
    """The gradient of pad(input, pad, mode, value); `input` may be the input or its shape."""
    from .pad import PAD_MODES

    dev = kernels(on_gpu(grad_output, input))
    if isinstance(input, (tuple, list)):
        shape = tuple(int(s) for s in input)
        dtype = as_array(grad_output, "grad_output")[0].dtype
    else:
        x = _input(dev, input)
        shape, dtype = tuple(x.shape), x.dtype
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {set(PAD_MODES)}, got {mode!r}")
    p = _check_pad(pad, len(shape), mode, shape)
    out_shape = list(shape)
    for i in range(len(p) // 2):
        out_shape[len(shape) - 1 - i] += p[2 * i] + p[2 * i + 1]
    g, src = _grad(dev, grad_output, out_shape, dtype)
    return dev.wrap(_pad_backward_array(dev, g, shape, p, mode), src)


# ------------------------------------------------------------------------ convolution


_GEOMETRIES = ValidatedCalls()


def _conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode):
    """Validated (pairs, stride, dilation, groups, output spatial size) of conv{nd}d on batched x,
    remembered per shapes and arguments (a training loop asks for the same ones every step)."""
    key = (nd, tuple(x.shape), tuple(w.shape), repr((stride, padding, dilation, groups, padding_mode)))
    done = _GEOMETRIES.get(key)
    if done is None:
        done = _checked_conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode)
        _GEOMETRIES.put(key, done)
    return done


def _checked_conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode):
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
    return tuple(pairs), stride, dilation, groups, out


def _conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode, output_mask):
    dev = kernels(on_gpu(grad_output, input))
    x = _input(dev, input)
    w = _input(dev, weight, "weight")
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
    g, src = _grad(dev, grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x = contiguous(x)
    w = contiguous(w)
    padded = padding_mode != "zeros" and any(lo or hi for lo, hi in pairs)
    pad_list = [p for pair in reversed(pairs) for p in pair]
    if padded:
        xp = dev.pad_array(x, pad_list, padding_mode, 0.0) if need_w else None
        pad3 = (0,) * 3
        padded_shape = tuple(x.shape[:2]) + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pairs))
    else:
        xp = x
        pad3 = (0,) * (3 - nd) + tuple(lo for lo, _ in pairs)
        padded_shape = tuple(x.shape)
    one = (1,) * (3 - nd)
    stride3, dilation3 = one + stride, one + dilation
    gx = gw = gb = None
    if need_x:
        gxp = dev.empty(padded_shape, x.dtype)
        if gxp.size:
            if g.size:
                dev.conv_backward_input(_to5d(g, nd), _to5d(w, nd), _to5d(gxp, nd), stride3, pad3, dilation3, groups)
            else:
                gxp.fill(0)
        gx = _pad_backward_array(dev, gxp, tuple(x.shape), pad_list, padding_mode) if padded else gxp
        if unbatched:
            gx = gx[0]
    if need_w:
        gw = dev.zeros(w.shape, x.dtype)
        if g.size:
            dev.conv_backward_weight(_to5d(xp, nd), _to5d(g, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = dev.zeros((oc,), x.dtype)
        if g.size:
            dev.channel_sum(g, gb)
    return _wrap_all(dev, src, gx, gw, gb)


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
    dev = kernels(on_gpu(grad_output, input))
    x = _input(dev, input)
    w = _input(dev, weight, "weight")
    need_x, need_w, need_b = _check_mask(output_mask)
    _, stride, padding, _, groups, dilation, cout, osz = _conv_transpose_args(
        nd, x, w, bias, stride, padding, output_padding, groups, dilation)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    out_shape = (x.shape[0], cout) + osz
    g, src = _grad(dev, grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x = contiguous(x)
    w = contiguous(w)
    one = (1,) * (3 - nd)
    stride3, pad3, dilation3 = one + stride, (0,) * (3 - nd) + padding, one + dilation
    gx = gw = gb = None
    if need_x:  # the transposed conv's input gradient is the conv of grad_output
        gx = dev.empty(x.shape, x.dtype)
        if gx.size:
            dev.conv_forward(_to5d(g, nd), _to5d(w, nd), None, _to5d(gx, nd), stride3, pad3, dilation3, groups)
        if unbatched:
            gx = gx[0]
    if need_w:  # the conv weight gradient with grad_output as the conv's input
        gw = dev.zeros(w.shape, x.dtype)
        if g.size and x.size:
            dev.conv_backward_weight(_to5d(g, nd), _to5d(x, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = dev.zeros((cout,), x.dtype)
        if g.size:
            dev.channel_sum(g, gb)
    return _wrap_all(dev, src, gx, gw, gb)


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


def _pool_input(dev, input, nd):
    x = _input(dev, input)
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or C, *spatial")
    return x


def _max_pool_backward(nd, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices):
    dev = kernels(on_gpu(grad_output, input, indices))
    x = _pool_input(dev, input, nd)
    kernel, stride, padding, dilation, osz = _window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = tuple(x.shape[: x.ndim - nd]) + osz
    g, src = _grad(dev, grad_output, shape, x.dtype)
    window = _pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0), _pad3(dilation, nd, 1)
    if indices is None:
        x = contiguous(x)
        idx = dev.empty(shape, np.int64)
        if idx.size:
            dev.max_pool(_planes(x, nd), _planes(dev.empty(shape, x.dtype), nd), _planes(idx, nd), *window)
    else:
        idx, _ = as_array(indices, "indices", allow_int=True)
        dev.check_device(idx, "indices", "grad_output")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array (from return_indices=True), got dtype {idx.dtype}")
        if tuple(idx.shape) != tuple(shape):
            raise ValueError(f"indices has shape {tuple(idx.shape)}, but the forward output has shape {tuple(shape)}")
        idx = dev.index_array(idx)
    gx = dev.empty(x.shape, x.dtype)
    if gx.size:  # indices from the caller are checked against the windows (the recomputed ones need not be)
        dev.max_pool_backward(_planes(g, nd), _planes(idx, nd), _planes(gx, nd), *window, indices is not None)
    return dev.wrap(gx, src)


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
    dev = kernels(on_gpu(grad_output, input))
    x = _pool_input(dev, input, nd)
    kernel, stride, padding, _, osz = _window_args(nd, x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = _divisor(divisor_override)
    g, src = _grad(dev, grad_output, tuple(x.shape[: x.ndim - nd]) + osz, x.dtype)
    gx = dev.empty(x.shape, x.dtype)
    if gx.size:
        dev.avg_pool_backward(_planes(g, nd), _planes(gx, nd), _pad3(kernel, nd, 1), _pad3(stride, nd, 1),
                              _pad3(padding, nd, 0), count_include_pad, divisor)
    return dev.wrap(gx, src)


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
    dev = kernels(on_gpu(grad_output, input))
    x = _pool_input(dev, input, nd)
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
    g, src = _grad(dev, grad_output, tuple(x.shape[: x.ndim - nd]) + osz, x.dtype)
    gx = dev.empty(x.shape, x.dtype)
    if gx.size:
        dev.adaptive_avg_pool_backward(_planes(g, nd), _planes(gx, nd))
    return dev.wrap(gx, src)


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
    dev = kernels(on_gpu(grad_output, input, output))
    if input is None and output is None:
        raise ValueError("pass the forward's input (or, for sigmoid and tanh, its output=)")
    ref = input if input is not None else output
    r = _input(dev, ref, "input" if input is not None else "output")
    g, src = _grad(dev, grad_output, r.shape, r.dtype)
    x = contiguous(r) if input is not None else None
    y = None
    if output is not None:
        y = _input(dev, output, "output")
        same_dtype(y, r, "output")
        if y.shape != r.shape:
            raise ValueError(f"output has shape {tuple(y.shape)}, but input has shape {tuple(r.shape)}")
        y = contiguous(y)
    gx = dev.empty(r.shape, r.dtype)
    if gx.size:
        dev.unary_backward(_core.UNARY_OPS[name], x, y, g, gx, alpha)
    return dev.wrap(gx, src)


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
    dev = kernels(on_gpu(grad_output, output))
    y = _input(dev, output, "output")
    if dim is None:
        raise ValueError("dim must be given (the dim the forward used)")
    d = normalize_dim(dim, y.ndim)
    g, src = _grad(dev, grad_output, y.shape, y.dtype)
    y = contiguous(y)
    shape = tuple(y.shape) if y.ndim else (1,)
    outer = math.prod(shape[:d])
    inner = math.prod(shape[d + 1:])
    gx = dev.empty(y.shape, y.dtype)
    if gx.size:
        dev.softmax_backward(y, g, gx, outer, shape[d], inner, log)
    return dev.wrap(gx, src)


def softmax_backward(grad_output, output, dim):
    """output * (grad_output - sum(grad_output * output, dim)); `output` is softmax's result."""
    return _softmax_backward(grad_output, output, dim, False)


def log_softmax_backward(grad_output, output, dim):
    """grad_output - exp(output) * sum(grad_output, dim); `output` is log_softmax's result."""
    return _softmax_backward(grad_output, output, dim, True)


def maxout_backward(grad_output, input, pieces, dim=1):
    """grad_output goes to the piece that won each maxout (the first maximum; NaN wins)."""
    dev = kernels(on_gpu(grad_output, input))
    x = _input(dev, input)
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"pieces must be a positive int, got {pieces!r}")
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dim for maxout")
    d = normalize_dim(dim, x.ndim)
    c = x.shape[d]
    if c % pieces:
        raise ValueError(f"input has {c} channels along dim {d} (shape {tuple(x.shape)}), not divisible by pieces={pieces}")
    shape = tuple(x.shape[:d]) + (c // pieces,) + tuple(x.shape[d + 1:])
    g, src = _grad(dev, grad_output, shape, x.dtype)
    x = contiguous(x)
    gx = dev.empty(x.shape, x.dtype)
    if gx.size:
        outer = math.prod(x.shape[:d])
        inner = math.prod(x.shape[d + 1:])
        dev.maxout_backward(x, g, gx, outer, c // pieces, int(pieces), inner)
    return dev.wrap(gx, src)


def linear_backward(grad_output, input, weight, bias=None, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of linear: grad_output @ weight, grad_output^T @ input, sum."""
    dev = kernels(on_gpu(grad_output, input))
    x = _input(dev, input)
    w = _input(dev, weight, "weight")
    same_dtype(w, x, "weight")
    need_x, need_w, need_b = _check_mask(output_mask)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"input's last dim must equal in_features={w.shape[1]} (weight shape {tuple(w.shape)}), "
                         f"got input shape {tuple(x.shape)}")
    n_out, k = w.shape
    g, src = _grad(dev, grad_output, tuple(x.shape[:-1]) + (n_out,), x.dtype)
    m = math.prod(x.shape[:-1])
    g2 = g.reshape(m, n_out)
    gx = None
    if need_x:
        gx = dev.zeros(x.shape, x.dtype)
        if gx.size and n_out:
            dev.linear_backward_input(g2, contiguous(w), gx.reshape(m, k))
    gw = dev.zeros(w.shape, x.dtype) if need_w else None
    gb = dev.zeros((n_out,), x.dtype) if need_b and bias is not None else None
    if (gw is not None or gb is not None) and m and n_out:
        dev.linear_backward_weight(g2, contiguous(x).reshape(m, k), gw, gb)
    return _wrap_all(dev, src, gx, gw, gb)


# ------------------------------------------------------------------------ interpolate, batch norm, dropout


def interpolate_backward(grad_output, input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                         recompute_scale_factor=None, antialias=False):
    """The gradient of interpolate with the same arguments (`input` may be the input or its shape)."""
    dev = kernels(on_gpu(grad_output, input))
    if isinstance(input, (tuple, list)):
        g0, _ = as_array(grad_output, "grad_output")
        x = dev.empty(tuple(int(s) for s in input), g0.dtype)
    else:
        x = _input(dev, input)
    nd, osz, scales, kind, align_corners = _interpolate_args(
        x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if kind == "area":
        return _adaptive_avg_pool_backward(nd, grad_output, x, osz)
    g, src = _grad(dev, grad_output, tuple(x.shape[:2]) + osz, x.dtype)
    gx = dev.empty(x.shape, x.dtype)
    if gx.size:
        _interp_call(dev.interpolate_backward, g, gx, nd, kind, align_corners, scales)
    return dev.wrap(gx, src)


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-05, *, save_mean=None, save_invstd=None,
                        output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of batch_norm with the same arguments. The statistics the
    forward used: save_mean / save_invstd when given, else the batch's (recomputed from input) in
    training, the running ones otherwise. grad_weight / grad_bias are None without weight / bias."""
    dev = kernels(on_gpu(grad_output, input))
    x = _input(dev, input)
    x3 = _bn_input(x)
    n, c, s = x3.shape
    training = check_bool(training, "training")
    eps = check_number(eps, "eps")
    need_x, need_w, need_b = _check_mask(output_mask)
    w = _bn_vector(dev, weight, "weight", c, x)
    if save_mean is not None and save_invstd is not None:
        mean = contiguous(_bn_vector(dev, save_mean, "save_mean", c, x))
        invstd = contiguous(_bn_vector(dev, save_invstd, "save_invstd", c, x))
    elif training:
        mean, _, invstd = dev.batch_stats(x3, eps)
    else:
        rm = _bn_vector(dev, running_mean, "running_mean", c, x)
        rv = _bn_vector(dev, running_var, "running_var", c, x)
        if rm is None or rv is None:
            raise ValueError("running_mean and running_var are required when training=False")
        mean = contiguous(rm)
        invstd = dev.inference_invstd(rv, eps, x.dtype)
    g, src = _grad(dev, grad_output, x.shape, x.dtype)
    gx = dev.empty(x.shape, x.dtype) if need_x else None
    gw = dev.zeros((c,), x.dtype) if need_w and w is not None else None
    gb = dev.zeros((c,), x.dtype) if need_b and bias is not None else None
    if x.size:
        dev.batch_norm_backward(x3, g.reshape(n, c, s), mean, invstd, None if w is None else contiguous(w), training,
                                None if gx is None else gx.reshape(n, c, s), gw, gb)
    return _wrap_all(dev, src, gx, gw, gb)


def dropout_backward(grad_output, mask, p=0.5):
    """grad_output * mask / (1 - p), mask = the keep mask of native_dropout."""
    dev = kernels(on_gpu(grad_output, mask))
    g, src = as_array(grad_output, "grad_output")
    dev.check_device(g, "grad_output", "the call")
    k = dev.mask(mask)
    dev.check_device(k, "mask", "grad_output")
    if tuple(k.shape) != tuple(g.shape):
        raise ValueError(f"mask has shape {tuple(k.shape)}, grad_output has shape {tuple(g.shape)}")
    p = check_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    gx = dev.masked(g, k)
    gx *= g.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return dev.wrap(gx, src)


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
