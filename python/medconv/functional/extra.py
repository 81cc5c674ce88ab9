"""conv_transpose1d/2d/3d, interpolate, batch_norm and dropout with torch.nn.functional's arguments.
GPU arrays (CuPy, or torch CUDA tensors through DLPack) run on medconv._gpu's kernels and come back
on the GPU (functional._kernels); mixing CPU and GPU arrays in one call is a TypeError."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._backend import Source, as_array, contiguous, same_dtype
from ._args import ValidatedCalls, check_bool, check_ndim, check_number, int_tuple
from ._kernels import kernels
from .conv import _shape5, _to5d, run_cached
from .pool import _as4d

INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


# ------------------------------------------------------------------------ transposed convolution


def _conv_transpose_args(nd, x, w, bias, stride, padding, output_padding, groups, dilation):
    """Validated arguments and the output spatial size of conv_transpose{nd}d."""
    same_dtype(w, x, "weight")
    check_ndim(w, (nd + 2,), "weight", "in_channels, out_channels/groups, *kernel_size")
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or unbatched C, *spatial")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    groups = int(groups)
    stride = int_tuple(stride, nd, "stride", minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or a tuple of {nd} ints for transposed convolutions, got {padding!r}")
    padding = int_tuple(padding, nd, "padding", minimum=0)
    output_padding = int_tuple(output_padding, nd, "output_padding", minimum=0)
    dilation = int_tuple(dilation, nd, "dilation", minimum=1)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, got output_padding={output_padding}, "
                f"stride={stride}, dilation={dilation}"
            )
    c = x.shape[-nd - 1]
    cin, cout_g = w.shape[:2]
    kernel = tuple(w.shape[2:])
    if cin == 0 or cout_g == 0 or any(k < 1 for k in kernel):
        raise ValueError(f"weight must have non-zero sizes, got shape {tuple(w.shape)}")
    if c != cin:
        raise ValueError(f"weight of shape {tuple(w.shape)} expects {cin} input channels, but input of shape "
                         f"{tuple(x.shape)} has {c}")
    if cin % groups:
        raise ValueError(f"in_channels ({cin}, weight.shape[0]) must be divisible by groups ({groups})")
    cout = cout_g * groups
    b = None
    if bias is not None:
        b, _ = as_array(bias, "bias")
        same_dtype(b, x, "bias")
        if b.shape != (cout,):
            raise ValueError(f"bias must have shape ({cout},) for weight of shape {tuple(w.shape)} and groups={groups}, "
                             f"got {tuple(b.shape)}")
        b = contiguous(b)
    spatial = x.shape[-nd:]
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                for i, s, p, d, k, op in zip(spatial, stride, padding, dilation, kernel, output_padding))
    if any(o < 1 for o in out):
        raise ValueError(f"output size {out} is too small: input spatial shape {tuple(spatial)}, kernel {kernel}, "
                         f"stride {stride}, padding {padding}, dilation {dilation}")
    return b, stride, padding, output_padding, groups, dilation, cout, out


_TRANSPOSE_CALLS = ValidatedCalls()


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, out):
    key = None
    if getattr(input, "ndim", 0) == nd + 2:  # batched: cacheable
        key = _TRANSPOSE_CALLS.key((input, weight, bias), (nd, stride, padding, output_padding, groups, dilation))
    done = _TRANSPOSE_CALLS.get(key)
    if done is not None:  # numpy arrays of the same shapes and dtypes, the same arguments, as a checked call
        return run_cached(_core.conv_transpose_forward, done, input, weight, bias, out)
    x, src = as_array(input, "input")
    dev = kernels(src.kind == "cupy")
    w, _ = as_array(weight, "weight")
    dev.check_device(w, "weight")
    b, stride, padding, _, groups, dilation, cout, osz = _conv_transpose_args(
        nd, x, w, bias, stride, padding, output_padding, groups, dilation)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    x = contiguous(x)
    w = contiguous(w)
    shape = (x.shape[0], cout) + osz
    y = dev.prepare_out(None if unbatched else out, shape, x.dtype)
    one = (1,) * (3 - nd)
    args = (one + stride, (0,) * (3 - nd) + padding, one + dilation, groups)
    if y.size:
        dev.conv_transpose_forward(_to5d(x, nd), _to5d(w, nd), b, _to5d(y, nd), *args)
    if key is not None:
        _TRANSPOSE_CALLS.put(key, (shape, args, _shape5(x.shape, nd), _shape5(w.shape, nd), _shape5(shape, nd)))
    if unbatched:
        y = y[0]
        if out is not None:
            dev.prepare_out(out, y.shape, y.dtype)[...] = y
    return dev.wrap(y, src, out)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    """Transposed 1D convolution over (N, C, L); weight: (in_channels, out_channels/groups, kL), as torch."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    """Transposed 2D convolution over (N, C, H, W); weight: (in_channels, out_channels/groups, kH, kW), as torch."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    """Transposed 3D convolution over (N, C, D, H, W); weight: (in_channels, out_channels/groups, kD, kH, kW)."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


# ------------------------------------------------------------------------ interpolate


def _interpolate_args(x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias):
    """(nd, output spatial size, scales passed to the kernel, kernel mode name, align_corners)."""
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"input must be 3D, 4D or 5D (N, C, *spatial), got shape {tuple(x.shape)}")
    nd = x.ndim - 2
    if mode not in INTERPOLATE_MODES:
        raise ValueError(f"mode must be one of {set(INTERPOLATE_MODES)}, got {mode!r}")
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != nd:
        raise ValueError(f"mode={mode!r} needs a {_LINEAR_MODES[mode] + 2}D input, got shape {tuple(x.shape)}")
    if align_corners is not None:
        align_corners = check_bool(align_corners, "align_corners")
        if mode not in _LINEAR_MODES:
            raise ValueError(f"align_corners can only be set with the linear modes (linear, bilinear, trilinear), "
                             f"got mode={mode!r}")
    align_corners = bool(align_corners)
    if check_bool(antialias, "antialias"):
        raise ValueError("antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("exactly one of size and scale_factor must be given")
    spatial = x.shape[2:]
    if size is not None:
        osz = int_tuple(size, nd, "size", minimum=1)
        scales = None
    else:
        if isinstance(scale_factor, (tuple, list)):
            if len(scale_factor) != nd:
                raise ValueError(f"scale_factor must be a number or a tuple of {nd} numbers, got {tuple(scale_factor)!r}")
            sf = tuple(check_number(s, "scale_factor") for s in scale_factor)
        else:
            sf = (check_number(scale_factor, "scale_factor"),) * nd
        if any(not math.isfinite(s) or s <= 0 for s in sf):
            raise ValueError(f"scale_factor must be positive and finite, got {scale_factor!r}")
        osz = tuple(int(math.floor(float(i) * s)) for i, s in zip(spatial, sf))
        if any(o < 1 for o in osz):
            raise ValueError(f"scale_factor {scale_factor!r} gives an empty output {osz} for input spatial shape "
                             f"{tuple(spatial)}")
        scales = None if recompute_scale_factor else sf
    if any(s < 1 for s in spatial):
        raise ValueError(f"input spatial dims must be non-empty, got shape {tuple(x.shape)}")
    kind = "linear" if mode in _LINEAR_MODES else mode
    return nd, osz, scales, kind, align_corners


def _interp_call(fn, a, b, nd, kind, align_corners, scales):
    """fn: a kernel namespace's interpolate or interpolate_backward, on (planes, D, H, W) views."""
    sc = (0.0,) * (3 - nd) + (tuple(scales) if scales is not None else (0.0,) * nd)
    fn(_as4d(a, nd), _as4d(b, nd), _core.INTERP_MODES[kind], align_corners, sc)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False, *, out=None):
    """Resamples (N, C, *spatial) to `size` or by `scale_factor`: nearest, nearest-exact, linear (3D input),
    bilinear (4D), trilinear (5D) or area, with torch's index rules and align_corners."""
    from . import pool

    x, src = as_array(input, "input")
    dev = kernels(src.kind == "cupy")
    nd, osz, scales, kind, align_corners = _interpolate_args(
        x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if kind == "area":
        return getattr(pool, f"adaptive_avg_pool{nd}d")(input, osz, out=out)
    x = contiguous(x)
    y = dev.prepare_out(out, x.shape[:2] + osz, x.dtype)
    if y.size:
        _interp_call(dev.interpolate, x, y, nd, kind, align_corners, scales)
    return dev.wrap(y, src, out)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """torch.nn.functional.upsample (an alias of interpolate)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


# ------------------------------------------------------------------------ batch norm


def _bn_input(x):
    if x.ndim < 2:
        raise ValueError(f"input must have at least 2 dims (N, C, *), got shape {tuple(x.shape)}")
    n, c = x.shape[:2]
    s = math.prod(x.shape[2:])
    return contiguous(x).reshape(n, c, s)


def _bn_vector(dev, v, name, c, ref):
    if v is None:
        return None
    a, _ = as_array(v, name)
    dev.check_device(a, name)
    same_dtype(a, ref, name)
    if a.shape != (c,):
        raise ValueError(f"{name} must have shape ({c},) for an input with {c} channels, got {tuple(a.shape)}")
    return a


_BN_CALLS = ValidatedCalls()
_NUMPY = Source("numpy")


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, out):
    """(output, mean, invstd): the statistics the normalisation used, which the backward needs."""
    key = _BN_CALLS.key((input, running_mean, running_var, weight, bias), (training, eps))
    done = _BN_CALLS.get(key)
    if done is not None:  # numpy arrays of the same shapes and dtypes, the same flags, as a checked call
        training, eps, (n, c, s) = done
        x, src, dev = input, _NUMPY, kernels(False)
        x3 = contiguous(x).reshape(n, c, s)
        rm, rv, w, b = running_mean, running_var, weight, bias
    else:
        x, src = as_array(input, "input")
        dev = kernels(src.kind == "cupy")
        x3 = _bn_input(x)
        n, c, s = x3.shape
        training = check_bool(training, "training")
        eps = check_number(eps, "eps")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        rm = _bn_vector(dev, running_mean, "running_mean", c, x)
        rv = _bn_vector(dev, running_var, "running_var", c, x)
        w = _bn_vector(dev, weight, "weight", c, x)
        b = _bn_vector(dev, bias, "bias", c, x)
        if training and n * s <= 1:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input shape {tuple(x.shape)}")
        if not training and (rm is None or rv is None):
            raise ValueError("running_mean and running_var are required when training=False")
        _BN_CALLS.put(key, (training, eps, (n, c, s)))
    if training:
        mean, var, invstd = dev.batch_stats(x3, eps)
        if momentum is not None:
            momentum = check_number(momentum, "momentum")
        if rm is not None or rv is not None:
            m = 0.1 if momentum is None else momentum
            if rm is not None:
                rm *= 1 - m
                rm += m * mean
            if rv is not None:
                rv *= 1 - m
                rv += m * var * (n * s / (n * s - 1))
    else:
        mean = contiguous(rm)
        invstd = dev.inference_invstd(rv, eps, x.dtype)
    y = dev.prepare_out(out, x.shape, x.dtype)
    if y.size:
        dev.batch_norm_apply(x3, mean, invstd, None if w is None else contiguous(w),
                             None if b is None else contiguous(b), y.reshape(n, c, s))
    return dev.wrap(y, src, out), mean, invstd


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05, *,
               out=None):
    """Normalises (N, C, *) per channel: batch statistics when training (and updates running_mean /
    running_var in place with `momentum`, the variance unbiased), running statistics otherwise."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, out)[0]


# ------------------------------------------------------------------------ dropout


def _check_p(p):
    p = check_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return p


def native_dropout(input, p=0.5, train=True, *, generator=None):
    """(output, keep_mask) as torch.native_dropout: output = input * keep / (1 - p), keep ~ Bernoulli(1 - p)
    drawn from `generator` (a numpy Generator; a fresh unseeded one if None). On the GPU the mask is
    drawn on the host, the same as the CPU's for the same generator state, and copied to the GPU."""
    x, src = as_array(input, "input")
    dev = kernels(src.kind == "cupy")
    p = _check_p(p)
    if not check_bool(train, "train") or p == 0.0:
        return dev.wrap(x.copy(), src), dev.wrap(dev.ones(x.shape, bool), src)
    rng = generator if generator is not None else np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(rng).__name__}")
    keep = rng.random(x.shape, dtype=np.float64) >= p if p < 1.0 else np.zeros(x.shape, dtype=bool)
    keep = dev.from_host(keep)
    y = dev.masked(x, keep)
    y *= x.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return dev.wrap(y, src), dev.wrap(keep, src)


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training."""
    x, src = as_array(input, "input")
    p = _check_p(p)
    if not check_bool(training, "training"):
        return input
    y, _ = native_dropout(x, p, True, generator=generator)
    if check_bool(inplace, "inplace"):
        x[...] = y
        return input
    return kernels(src.kind == "cupy").wrap(y, src)


__all__ = [
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "interpolate", "upsample",
    "batch_norm", "dropout", "native_dropout",
]
