"""Argument validation shared by the ops: tuples of ints, dims, and clear messages."""
from __future__ import annotations

import numbers

import numpy as np


def int_tuple(value, n: int, name: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """An int or a sequence of n ints, as a tuple of n ints, each >= minimum."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        if len(value) == 1:
            values = (int(value[0]),) * n
        elif len(value) != n:
            raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {tuple(value)!r}")
        else:
            values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum}, got {values!r}")
    return values


def check_ndim(arr: np.ndarray, allowed: tuple[int, ...], name: str, what: str) -> None:
    if arr.ndim not in allowed:
        shapes = " or ".join(f"{d}D" for d in allowed)
        raise ValueError(f"{name} must be {shapes} ({what}), got shape {tuple(arr.shape)}")


def normalize_dim(dim, ndim: int, name: str = "dim") -> int:
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {dim!r}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not lo <= dim <= hi:
        raise ValueError(f"{name} out of range: expected a value in [{lo}, {hi}] for an input of {ndim} dims, got {dim}")
    return int(dim) % max(ndim, 1)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_number(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def window_output_size(size: int, kernel: int, pad_total: int, stride: int, dilation: int, ceil_mode: bool,
                       pad_before: int) -> int:
    """O = floor((I + P - D(K-1) - 1) / S) + 1, and torch's ceil_mode rule (the last window must
    start inside the input or its leading padding)."""
    numerator = size + pad_total - dilation * (kernel - 1) - 1
    out = (numerator + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


_BY_VALUE = frozenset({int, bool, type(None), str})


class ValidatedCalls:
    """The argument sets an op has already validated, keyed by everything the checks read: the
    arrays' shapes and dtypes and the other arguments with their types. A repeated call on the same
    shapes skips the checks. Only plain numpy arrays, and the ndarray subclasses registered in
    `array_types` (medconv.nn's Parameter), are cached. The other arguments enter the key by their
    types and repr, so that 2 and 2.0, 1 and True, or 1e-7 and numpy.float32(1e-7) are different
    calls. Ops also use it as a bounded memo of checks that read only shapes, with keys of their own."""

    array_types = {np.ndarray}

    def __init__(self, limit: int = 1024):
        self._done: dict = {}
        self._limit = limit

    def key(self, arrays, args: tuple):
        """The call's key, or None when it can not be cached."""
        types = self.array_types
        parts = []
        for a in arrays:
            if a is None:
                parts.append(None)
            elif type(a) in types:
                parts.append((a.shape, a.dtype))
            else:
                return None
        types_of_args = tuple(map(type, args))
        parts.append(types_of_args)
        # ints, bools, None and strings key by value (with their types: 1 and True differ); others
        # (floats, where -0.0 == 0.0 but their signs reach results; tuples, which may nest floats)
        # by repr
        parts.append(args if _BY_VALUE.issuperset(types_of_args) else repr(args))
        return tuple(parts)

    def get(self, key):
        return None if key is None else self._done.get(key)

    def put(self, key, value) -> None:
        if key is None:
            return
        if len(self._done) >= self._limit:  # a shape sweep must not grow it forever
            self._done.clear()
        self._done[key] = value
