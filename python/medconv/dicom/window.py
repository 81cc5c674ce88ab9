"""Windowing: modality values -> [0, 1] float32 for display and model input.

The DICOM linear VOI function (PS3.3 C.11.2.1.2) scaled to [0, 1]:
``y = clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1)``; width 1 is a threshold at
``center - 0.5``. MONOCHROME1 images are inverted (``1 - y``) after the window, never in the
modality values.
"""
from __future__ import annotations

import numbers
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

import numpy as np

__all__ = ["WINDOW_PRESETS", "window", "resolve_window", "file_window"]

#: Named CT windows, (center, width) in Hounsfield units.
WINDOW_PRESETS: Mapping[str, Tuple[float, float]] = MappingProxyType({
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
})


def _pair(center, width) -> Tuple[float, float]:
    for name, value in (("center", center), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"window {name} must be a finite number, got {value!r}")
    if width < 1:
        raise ValueError(f"window width must be >= 1 (DICOM (0028,1051)), got {width!r}")
    return float(center), float(width)


def resolve_window(window) -> Optional[Tuple[float, float]]:
    """None, a preset name or a (center, width) pair -> (center, width) or None."""
    if window is None:
        return None
    if isinstance(window, str):
        if window in WINDOW_PRESETS:
            return WINDOW_PRESETS[window]
        if window == "file":
            raise ValueError("window='file' takes the file's own window: pass it to read() or "
                             "read_series(), which know the file")
        raise ValueError(f"window must be one of {sorted(WINDOW_PRESETS)}, 'file' or a (center, width) "
                         f"pair, got {window!r}")
    try:
        center, width = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be a preset name or a (center, width) pair, got {window!r}") from None
    return _pair(center, width)


def _first(value):
    """The first value of a multi-valued element (MultiValue), or the value itself."""
    if isinstance(value, (str, bytes, numbers.Real)):
        return value
    try:
        return value[0]
    except (TypeError, IndexError):
        return value


def file_window(ds) -> Optional[Tuple[float, float]]:
    """The first (center, width) the dataset recommends: (0028,1050)/(0028,1051), else the
    Frame VOI LUT of the shared or first frame's functional groups; None when it has none."""
    items = [ds]
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if seq and seq[0].get("FrameVOILUTSequence"):
            items.append(seq[0].FrameVOILUTSequence[0])
    for item in items:
        c, w = item.get("WindowCenter"), item.get("WindowWidth")
        if c is None or w is None or c == "" or w == "":
            continue
        c, w = _first(c), _first(w)
        try:
            return _pair(float(c), float(w))
        except (TypeError, ValueError):
            return None
    return None


def window(array, center, width=None, *, invert: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Window modality values to [0, 1] float32: ``window(hu, 40, 80)`` or ``window(hu, "brain")``.

    array: a numpy array of modality values (float32, float64 or an integer dtype).
    center, width: the window (DICOM linear function); or center a name in WINDOW_PRESETS.
    invert: ``1 - y`` after the window, for MONOCHROME1 images.
    out: a float32 array of the same shape to write into (may be `array` itself when float32).
    """
    from .pixels import KERNEL_DTYPES, rescale

    if isinstance(center, str):
        if width is not None:
            raise ValueError(f"give a preset name or (center, width), not both: got {center!r}, {width!r}")
        pair = resolve_window(center)
    else:
        if width is None:
            raise ValueError("window width is missing: window(array, center, width) or window(array, 'preset')")
        pair = _pair(center, width)
    arr = np.asarray(array)
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)  # visible: the window reads float32 modality values
    elif arr.dtype not in KERNEL_DTYPES and arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        raise TypeError(f"array of {arr.dtype} is not supported: convert to float32 first")
    elif arr.dtype.kind not in "iuf":
        raise TypeError(f"array must hold numbers (float32, float64 or integers), got {arr.dtype}")
    return rescale(arr, window=pair, invert=invert, out=out)
