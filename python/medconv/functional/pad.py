"""pad with torch.nn.functional.pad's pad-tuple order (last dim first)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._backend import as_array, contiguous, prepare_out, wrap
from ._args import ValidatedCalls, check_number

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _check_pad(pad, ndim, mode, shape):
    if not isinstance(pad, (tuple, list)) or not all(
        isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad
    ):
        raise TypeError(f"pad must be a tuple of ints (left, right[, top, bottom[, front, back]]), got {pad!r}")
    pad = [int(p) for p in pad]
    if len(pad) % 2 or not 2 <= len(pad) <= 6:
        raise ValueError(f"pad must have 2, 4 or 6 entries (last 1, 2 or 3 dims), got {len(pad)}: {tuple(pad)}")
    npad = len(pad) // 2
    if npad > ndim:
        raise ValueError(f"pad {tuple(pad)} pads {npad} dims but input has only {ndim} (shape {shape})")
    for i in range(npad):
        before, after = pad[2 * i], pad[2 * i + 1]
        size = shape[ndim - 1 - i]
        if mode == "constant":
            if size + before + after < 0:
                raise ValueError(f"pad {tuple(pad)} would give a negative size for dim {ndim - 1 - i} of size {size}")
            continue
        if before < 0 or after < 0:
            raise ValueError(f"pad must be non-negative for mode={mode!r}, got {tuple(pad)}")
        if mode == "reflect" and (before >= size or after >= size):
            raise ValueError(
                f"pad {tuple(pad)} with mode='reflect' must be smaller than the padded dim: "
                f"dim {ndim - 1 - i} of input shape {shape} has size {size}"
            )
        if mode == "circular" and (before > size or after > size):
            raise ValueError(
                f"pad {tuple(pad)} with mode='circular' must be at most the padded dim: "
                f"dim {ndim - 1 - i} of input shape {shape} has size {size}"
            )
        if mode == "replicate" and size == 0 and (before or after):
            raise ValueError(f"pad with mode='replicate' needs a non-empty dim {ndim - 1 - i}, input shape {shape}")
    return pad


def pad_array(x: np.ndarray, pad, mode: str, value: float, out=None) -> np.ndarray:
    """Pads a C-contiguous float array whose arguments are already checked; returns numpy."""
    npad = len(pad) // 2
    before = [0, 0, 0]
    after = [0, 0, 0]
    for i in range(npad):
        before[2 - i], after[2 - i] = pad[2 * i], pad[2 * i + 1]
    lead = x.shape[: x.ndim - npad]
    tail = (1,) * (3 - npad) + x.shape[x.ndim - npad:]
    out_tail = tuple(t + b + a for t, b, a in zip(tail, before, after))
    shape = lead + out_tail[3 - npad:]
    y = prepare_out(out, shape, x.dtype)
    if y.size:
        outer = math.prod(lead)
        _core.pad(x.reshape((outer,) + tail), y.reshape((outer,) + out_tail), before, after,
                  _core.PAD_MODES[mode], value)
    return y


_CALLS = ValidatedCalls()


def pad(input, pad, mode="constant", value=None, *, out=None):
    """Pads the last len(pad) // 2 dims (1 to 3); pad = (left, right, top, bottom, front, back).
    mode: 'constant' (with value; negative pads crop), 'reflect', 'replicate' or 'circular'."""
    key = _CALLS.key((input,), (pad, mode, value))
    done = _CALLS.get(key)
    if done is not None:  # the same shape and arguments as a validated call
        p, value = done
        y = pad_array(contiguous(input), p, mode, value, out)
        return y if out is None else out
    x, src = as_array(input, "input")
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {set(PAD_MODES)}, got {mode!r}")
    if mode != "constant" and value not in (None, 0, 0.0):
        raise ValueError(f"value is only used by mode='constant', got value={value!r} with mode={mode!r}")
    value = 0.0 if value is None else check_number(value, "value")
    p = _check_pad(pad, x.ndim, mode, tuple(x.shape))
    _CALLS.put(key, (p, value))
    if src.kind == "cupy":
        from .. import _gpu
        return _gpu.pad(x, p, mode, value, out, src)
    return wrap(pad_array(contiguous(x), p, mode, value, out), src, out)
