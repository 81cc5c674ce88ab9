"""Activations, softmax / log_softmax, maxout and linear with torch.nn.functional's arguments."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, prepare_out, same_dtype, wrap
from ._args import ValidatedCalls, check_bool, check_number, normalize_dim

GELU_APPROXIMATIONS = ("none", "tanh")


def _unary(name, input, alpha=0.0, inplace=False, out=None):
    x, src = as_array(input, "input")
    inplace = check_bool(inplace, "inplace")
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.unary(name, input, x, alpha, inplace, out, src)
    if inplace:
        if out is not None:
            raise ValueError("pass either inplace=True or out=, not both")
        if not (x.flags.c_contiguous and x.flags.writeable):
            raise ValueError("inplace=True needs a writeable C-contiguous input")
        y = x
    else:
        x = contiguous(x)
        y = prepare_out(out, x.shape, x.dtype)
    if x.size:
        _core.unary(_core.UNARY_OPS[name], x, y, alpha)
    if inplace:
        return input
    return wrap(y, src, out)


def relu(input, inplace=False, *, out=None):
    """max(0, x); NaN stays NaN."""
    return _unary("relu", input, 0.0, inplace, out)


def leaky_relu(input, negative_slope=0.01, inplace=False, *, out=None):
    """x if x > 0 else negative_slope * x."""
    return _unary("leaky_relu", input, check_number(negative_slope, "negative_slope"), inplace, out)


def elu(input, alpha=1.0, inplace=False, *, out=None):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _unary("elu", input, check_number(alpha, "alpha"), inplace, out)


def sigmoid(input, *, out=None):
    """1 / (1 + exp(-x))."""
    return _unary("sigmoid", input, out=out)


def tanh(input, *, out=None):
    """The hyperbolic tangent."""
    return _unary("tanh", input, out=out)


def gelu(input, approximate="none", *, out=None):
    """x * Phi(x) (approximate='none') or its tanh approximation (approximate='tanh')."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate must be one of {set(GELU_APPROXIMATIONS)}, got {approximate!r}")
    return _unary("gelu" if approximate == "none" else "gelu_tanh", input, out=out)


_SOFTMAX_CALLS = ValidatedCalls()


def _softmax(input, dim, dtype, log, out):
    key = _SOFTMAX_CALLS.key((input,), (dim, dtype, log)) if dtype is None else None
    done = _SOFTMAX_CALLS.get(key)
    if done is not None:  # a numpy array of the same shape and dtype, the same dim, as a checked call
        x = contiguous(input)
        y = prepare_out(out, x.shape, x.dtype)
        _core.softmax(x, y, *done, log)
        return y if out is None else out
    x, src = as_array(input, "input")
    if dim is None:
        raise ValueError("dim must be given (softmax over which axis?), e.g. dim=1 for (N, classes)")
    if dtype is not None:
        target = np.dtype(dtype)
        if target not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {target}")
        x = x.astype(target, copy=False)
    d = normalize_dim(dim, x.ndim)
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.softmax(x, d, log, out, src)
    x = contiguous(x)
    y = prepare_out(out, x.shape, x.dtype)
    shape = x.shape if x.ndim else (1,)
    outer = math.prod(shape[:d])
    inner = math.prod(shape[d + 1:])
    if x.size:
        _core.softmax(x, y, outer, shape[d], inner, log)
        _SOFTMAX_CALLS.put(key, (outer, shape[d], inner))
    return wrap(y, src, out)


def softmax(input, dim=None, dtype=None, *, out=None):
    """exp(x - max) / sum(exp(x - max)) along dim."""
    return _softmax(input, dim, dtype, False, out)


def log_softmax(input, dim=None, dtype=None, *, out=None):
    """x - max - log(sum(exp(x - max))) along dim."""
    return _softmax(input, dim, dtype, True, out)


def maxout(input, pieces, dim=1, *, out=None):
    """The max over each run of `pieces` consecutive channels along dim: C -> C / pieces."""
    x, src = as_array(input, "input")
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"pieces must be a positive int, got {pieces!r}")
    d = normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dim for maxout")
    c = x.shape[d]
    if c % pieces:
        raise ValueError(f"input has {c} channels along dim {d} (shape {tuple(x.shape)}), not divisible by pieces={pieces}")
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.maxout(x, d, int(pieces), out, src)
    x = contiguous(x)
    shape = x.shape[:d] + (c // pieces,) + x.shape[d + 1:]
    y = prepare_out(out, shape, x.dtype)
    outer = math.prod(x.shape[:d])
    inner = math.prod(x.shape[d + 1:])
    if y.size:
        _core.maxout(x, y, outer, c // pieces, int(pieces), inner)
    return wrap(y, src, out)


_LINEAR_CALLS = ValidatedCalls()


def linear(input, weight, bias=None, *, out=None):
    """x @ weight.T + bias over the last dim of x; weight: (out_features, in_features)."""
    key = _LINEAR_CALLS.key((input, weight, bias), ())
    done = _LINEAR_CALLS.get(key)
    if done is not None:  # numpy arrays of the same shapes and dtypes as a checked call
        shape, x2, y2 = done
        y = prepare_out(out, shape, input.dtype)
        _core.linear(contiguous(input).reshape(x2), contiguous(weight), None if bias is None else contiguous(bias),
                     y.reshape(y2))
        return y if out is None else out
    x, src = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    same_dtype(w, x, "weight")
    if w.ndim != 2:
        raise ValueError(f"weight must be 2D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"input's last dim must equal in_features={w.shape[1]} (weight shape {tuple(w.shape)}), "
            f"got input shape {tuple(x.shape)}"
        )
    b = None
    if bias is not None:
        b, _ = as_array(bias, "bias")
        same_dtype(b, x, "bias")
        if b.shape != (w.shape[0],):
            raise ValueError(f"bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
        b = contiguous(b)
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.linear(x, w, b, out, src)
    x = contiguous(x)
    w = contiguous(w)
    shape = x.shape[:-1] + (w.shape[0],)
    y = prepare_out(out, shape, x.dtype)
    m = math.prod(x.shape[:-1])
    if y.size:
        if w.shape[1] == 0:
            y[...] = 0 if b is None else b
        else:
            _core.linear(x.reshape(m, w.shape[1]), w, b, y.reshape(m, w.shape[0]))
            _LINEAR_CALLS.put(key, (shape, (m, w.shape[1]), (m, w.shape[0])))
    return wrap(y, src, out)
