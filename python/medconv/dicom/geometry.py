"""Where each frame sits in patient space (LPS, mm), and the checks a stack of slices must pass.

Orientation (0020,0037) holds the row direction (along a row: increasing column index) then the
column direction (increasing row index); the slice normal is row x column. Slices are ordered by
their position (0020,0032) projected on that normal -- never by Instance Number or file name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ._values import get
from .errors import DicomError

__all__ = ["Plane", "frame_planes", "slice_normal", "ORIENTATION_TOL"]

ORIENTATION_TOL = 1e-4     # direction cosines that differ by less are the same orientation
SPACING_RTOL = 1e-2        # slice steps within 1% (or SPACING_ATOL) of the median are uniform
SPACING_ATOL = 1e-3        # mm
DUPLICATE_RTOL = 1e-2      # two slices closer than 1% of the step (or DUPLICATE_ATOL) coincide
DUPLICATE_ATOL = 1e-3      # mm
GAP_FACTOR = 1.5           # a step this much larger than the median means missing slices
TILT_PIXEL_FRACTION = 0.1  # in-plane drift over the stack beyond 0.1 pixel is a tilt


@dataclass(frozen=True)
class Plane:
    """One frame's geometry; any part may be missing (None)."""
    position: Optional[np.ndarray]      # (0020,0032) first voxel centre, x, y, z
    orientation: Optional[np.ndarray]   # (0020,0037) row then column direction cosines (6,)
    pixel_spacing: Optional[tuple]      # (0028,0030) (between rows, between columns) mm
    thickness: Optional[float]          # (0018,0050)


def _floats(value, n: int, path, tag) -> Optional[np.ndarray]:
    if value is None or value == "":
        return None
    try:
        values = [value] if isinstance(value, (int, float, str, bytes)) else list(value)
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise DicomError(f"is not {n} numbers: {value!r}", path, tag=tag) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomError(f"must hold {n} finite numbers, got {value!r}", path, tag=tag)
    return arr


def _orientation(value, path) -> Optional[np.ndarray]:
    o = _floats(value, 6, path, "ImageOrientationPatient")
    if o is None:
        return None
    row, col = o[:3], o[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 0.5 or nc < 0.5 or abs(float(row @ col)) / (nr * nc) > 1e-2:
        raise DicomError(f"is not two orthogonal unit vectors: {list(o)}", path, tag="ImageOrientationPatient")
    return np.concatenate([row / nr, col / nc])


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """The unit normal row x column of an orientation (6,)."""
    n = np.cross(orientation[:3], orientation[3:])
    return n / np.linalg.norm(n)


def _spacing(value, path) -> Optional[tuple]:
    s = _floats(value, 2, path, "PixelSpacing")
    if s is None:
        return None
    if np.any(s <= 0):
        raise DicomError(f"must be positive, got {list(s)}", path, tag="PixelSpacing")
    return float(s[0]), float(s[1])


def _thickness(item) -> Optional[float]:
    try:
        t = float(get(item, "SliceThickness"))
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) and t > 0 else None


def _item(ds, groups: str, index: int, sequence: str):
    seq = ds.get(groups)
    if seq and len(seq) > index and seq[index].get(sequence):
        return seq[index].get(sequence)[0]
    return None


def _frame_item(ds, frame: int, sequence: str):
    return _item(ds, "PerFrameFunctionalGroupsSequence", frame, sequence) or \
        _item(ds, "SharedFunctionalGroupsSequence", 0, sequence)


def frame_planes(ds, path, frames: int) -> List[Plane]:
    """The geometry of every frame: enhanced multi-frame functional groups, an RT Dose grid
    (Grid Frame Offset Vector along the normal), or the top-level attributes."""
    top = Plane(_floats(get(ds, "ImagePositionPatient"), 3, path, "ImagePositionPatient"),
                _orientation(get(ds, "ImageOrientationPatient"), path),
                _spacing(get(ds, "PixelSpacing"), path), _thickness(ds))
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        planes = []
        for f in range(frames):
            pos = _frame_item(ds, f, "PlanePositionSequence")
            ori = _frame_item(ds, f, "PlaneOrientationSequence")
            mea = _frame_item(ds, f, "PixelMeasuresSequence")
            planes.append(Plane(
                _floats(get(pos, "ImagePositionPatient"), 3, path, "ImagePositionPatient") if pos else top.position,
                _orientation(get(ori, "ImageOrientationPatient"), path) if ori else top.orientation,
                _spacing(get(mea, "PixelSpacing"), path) if mea else top.pixel_spacing,
                _thickness(mea) if mea else top.thickness))
        return planes
    if frames > 1:
        offsets = get(ds, "GridFrameOffsetVector")
        if offsets is not None and top.position is not None and top.orientation is not None:
            off = _floats(offsets, frames, path, "GridFrameOffsetVector")
            n = slice_normal(top.orientation)
            # Relative offsets start at 0; absolute ones (axial only) start at the first z: either
            # way frame k lies (off[k] - off[0]) along the normal from the first position.
            return [Plane(top.position + (o - off[0]) * n, top.orientation, top.pixel_spacing, top.thickness)
                    for o in off]
        # A classic multi-frame without per-frame positions: only the first frame is placed.
        return [top] + [Plane(None, top.orientation, top.pixel_spacing, top.thickness)] * (frames - 1)
    return [top]


@dataclass
class StackGeometry:
    """The result of placing a stack: order, steps along the normal and what is wrong with it."""
    order: List[int]                 # indices into the input, sorted along the normal
    distances: np.ndarray            # sorted positions along the normal, mm
    step: float                      # the median step between distinct positions, mm
    duplicates: List[List[int]]      # groups of input indices at one position (first kept)
    gaps: List[tuple]                # (after sorted index, step mm, missing slices)
    nonuniform: bool
    step_range: tuple                # (min, max) step between kept slices
    tilt_degrees: float              # gantry tilt: angle between the stack's axis and the normal
    irregular_mm: float              # largest in-plane deviation of a position from the stack axis


def place_stack(positions: np.ndarray, orientation: np.ndarray, pixel_spacing: tuple,
                tiebreak: Sequence) -> StackGeometry:
    """Sorts positions (N, 3) along the normal and measures duplicates, gaps, uniformity, tilt."""
    n = slice_normal(orientation)
    d = positions @ n
    order = sorted(range(len(d)), key=lambda i: (d[i], tiebreak[i]))
    ds_ = d[order]
    diffs = np.diff(ds_)
    distinct = diffs[diffs > DUPLICATE_ATOL]
    median = float(np.median(distinct)) if distinct.size else 0.0
    dup_tol = max(DUPLICATE_ATOL, DUPLICATE_RTOL * median)
    duplicates, keep = [], [order[0]] if order else []
    group = [order[0]] if order else []
    for k in range(1, len(order)):
        if diffs[k - 1] <= dup_tol:
            group.append(order[k])
        else:
            if len(group) > 1:
                duplicates.append(group)
            group = [order[k]]
            keep.append(order[k])
    if len(group) > 1:
        duplicates.append(group)
    dk = d[keep]
    steps = np.diff(dk)
    step = float(np.median(steps)) if steps.size else 0.0
    gaps = []
    for k, s in enumerate(steps):
        if step > 0 and s > GAP_FACTOR * step:
            gaps.append((k, float(s), int(round(s / step)) - 1))
    tol = max(SPACING_ATOL, SPACING_RTOL * step)
    nonuniform = bool(steps.size and np.any(np.abs(steps - step) > tol))
    step_range = (float(steps.min()), float(steps.max())) if steps.size else (0.0, 0.0)
    # In-plane drift: the positions' components across the normal, against distance along it.
    p = positions[keep]
    inplane = (p - p[0]) - np.outer(dk - dk[0], n)
    tilt = 0.0
    irregular = 0.0
    if len(keep) > 1 and dk[-1] > dk[0]:
        drift = inplane[-1] / (dk[-1] - dk[0])            # in-plane mm per mm along the normal
        line = np.outer(dk - dk[0], drift)
        irregular = float(np.max(np.linalg.norm(inplane - line, axis=1)))
        if np.linalg.norm(inplane[-1]) > TILT_PIXEL_FRACTION * min(pixel_spacing):
            tilt = math.degrees(math.atan(float(np.linalg.norm(drift))))
    return StackGeometry(keep, dk, step, duplicates, gaps, nonuniform, step_range, tilt, irregular)


def direction_matrix(orientation: np.ndarray) -> np.ndarray:
    """3x3, as ITK's: columns are the patient-space directions of the column, row and slice axes."""
    return np.column_stack([orientation[:3], orientation[3:], slice_normal(orientation)])


def affine_matrix(direction: np.ndarray, spacing_xyz: Sequence[float], origin: np.ndarray,
                  slice_step: Optional[np.ndarray] = None) -> np.ndarray:
    """4x4 from (column, row, slice) index to LPS mm; slice_step, when given, is the actual vector
    between slices (a tilted stack), else direction[:, 2] * spacing."""
    a = np.eye(4)
    a[:3, :3] = direction * np.asarray(spacing_xyz, dtype=np.float64)
    if slice_step is not None:
        a[:3, 2] = slice_step
    a[:3, 3] = origin
    return a
