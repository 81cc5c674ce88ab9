"""read_series(path_or_files) -> Volume: slices placed by position, checked, decoded in parallel."""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ._files import has_pixels, list_files, find_dicomdir, read_dataset
from ._values import get
from .errors import DicomError, NotDicomError
from .geometry import (ORIENTATION_TOL, TILT_PIXEL_FRACTION, Plane, affine_matrix, direction_matrix,
                       frame_planes, place_stack)
from .image import window_for
from .window import resolve_window
from .meta import image_meta
from .pixels import check_pixel_length, frame_count, modality_transforms, stored_pixels, write_modality

__all__ = ["Volume", "SeriesReport", "read_series"]


@dataclass(repr=False)
class SeriesReport:
    """What read_series found. Every entry of `problems` makes a strict read raise DicomError;
    read_series(..., strict=False) returns the volume with this report instead.

    skipped: (file, reason) for files of the series left out (unreadable, truncated, of another
        size or orientation than most, pixel data that failed to decode).
    ignored: (file, reason) for files in a folder that are not images (not DICOM, a DICOMDIR, an RT
        plan, a structured report); never a problem.
    duplicates: groups of files that share one position; the first of each group (lowest
        Instance Number, then name) is kept.
    gaps: (after slice index, step mm, slices missing) where the step is > 1.5x the median.
    """
    source: Optional[str] = None
    series_uid: Optional[str] = None
    files: int = 0
    slices: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    ignored: List[Tuple[str, str]] = field(default_factory=list)
    duplicates: List[List[str]] = field(default_factory=list)
    gaps: List[Tuple[int, float, int]] = field(default_factory=list)
    nonuniform: bool = False
    step_range: Tuple[float, float] = (0.0, 0.0)
    mixed: Dict[str, Dict[str, int]] = field(default_factory=dict)
    tilt_degrees: float = 0.0
    irregular_mm: float = 0.0
    no_geometry: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def problems(self) -> List[str]:
        out = []
        if self.skipped:
            out.append(f"{len(self.skipped)} file(s) skipped: " +
                       "; ".join(f"'{p}': {r}" for p, r in self.skipped[:5]) +
                       (" ..." if len(self.skipped) > 5 else ""))
        for kind, counts in self.mixed.items():
            out.append(f"mixed {kind}: " + ", ".join(f"{k} ({v} slices)" for k, v in counts.items()))
        if self.no_geometry:
            out.append(f"{len(self.no_geometry)} slice(s) without (0020,0032) Image Position or (0020,0037) "
                       f"Image Orientation (Patient), e.g. '{self.no_geometry[0]}'")
        if self.duplicates:
            out.append(f"{len(self.duplicates)} duplicate position(s): " +
                       "; ".join(" = ".join(f"'{p}'" for p in g) for g in self.duplicates[:3]) +
                       (" ..." if len(self.duplicates) > 3 else ""))
        if self.gaps:
            out.append("missing slices: " + ", ".join(
                f"{n} after slice {k} (step {s:.3f} mm)" for k, s, n in self.gaps))
        if self.nonuniform and not self.gaps:
            out.append(f"non-uniform slice spacing: steps from {self.step_range[0]:.4f} to "
                       f"{self.step_range[1]:.4f} mm")
        if self.tilt_degrees:
            out.append(f"gantry tilt of {self.tilt_degrees:.3f} degrees (slices are sheared, not resampled)")
        if self.irregular_mm:
            out.append(f"slice positions stray up to {self.irregular_mm:.3f} mm off the stack's axis")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (f"series {self.series_uid}: {self.slices} slice(s) from {self.files} file(s)"
                + (f" in '{self.source}'" if self.source else ""))
        lines = [head] + [f"  problem: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes]
        if self.ignored:
            lines.append(f"  ignored {len(self.ignored)} non-image file(s)")
        return "\n".join(lines)

    __repr__ = __str__


@dataclass(repr=False)
class Volume:
    """A series as a float32 volume with its place in patient space (LPS, mm, as ITK/SimpleITK).

    array: (slices, rows, cols), or (slices, rows, cols, 3) for colour, float32 modality units.
    spacing: (z, y, x) mm -- z from the slice positions, y and x from (0028,0030) Pixel Spacing.
    origin: (x, y, z) of the first voxel's centre.
    direction: 3x3; its columns are the patient directions of the column, row and slice axes.
    affine: 4x4 from (column, row, slice) index to (x, y, z): for array[k, j, i] use
        affine @ [i, j, k, 1]. With a gantry tilt its third column is the actual step between
        slices, so it stays exact where direction @ diag(spacing) does not.
    positions: (slices, 3) each slice's (0020,0032); sop_instance_uids and files: per slice.
    """
    array: np.ndarray
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: np.ndarray
    affine: np.ndarray
    meta: Dict[str, Any]
    sop_instance_uids: List[Optional[str]]
    files: List[str]
    positions: np.ndarray
    report: SeriesReport

    def __repr__(self) -> str:
        return (f"Volume({'x'.join(map(str, self.array.shape))} float32, {self.meta.get('modality')}, "
                f"spacing={tuple(round(s, 4) for s in self.spacing)}, "
                f"origin={tuple(round(o, 3) for o in self.origin)})")

    def geometry(self) -> Dict[str, Any]:
        """Spacing, origin, direction, affine, shape, slice UIDs and meta as JSON-ready values."""
        return {
            "shape": list(self.array.shape), "spacing_zyx": list(self.spacing), "origin_xyz": list(self.origin),
            "direction": self.direction.tolist(), "affine": self.affine.tolist(),
            "sop_instance_uids": list(self.sop_instance_uids), "meta": self.meta,
            "problems": self.report.problems,
        }

    def save(self, path) -> None:
        """Writes the array to `path` (.npy) and its geometry to the same name with .json."""
        path = os.fspath(path)
        np.save(path, self.array)
        base = path[:-4] if path.endswith(".npy") else path
        with open(base + ".json", "w") as f:
            json.dump(self.geometry(), f, indent=1)


# --- reading -----------------------------------------------------------------------------------

@dataclass
class _File:
    path: str
    ds: Any                 # the dataset, pixel data deferred; dropped once decoded
    frames: int
    planes: List[Plane]     # one per frame
    instance: int           # (0020,0013), 0 when absent: a tie-break only, never the order
    sop_uid: Optional[str]


_Slice = Tuple[_File, int, Plane]  # (file, frame, plane)


def _inputs(path_or_files) -> Tuple[List[str], bool, Optional[str], List[Tuple[str, str]]]:
    """(files, whether they come from a folder, the source to name in errors, files the DICOMDIR
    lists but that are missing) for a folder, a DICOMDIR, one file or a list of files."""
    from .scan import dicomdir_files

    if not isinstance(path_or_files, (str, os.PathLike)):
        files = [os.fspath(f) for f in path_or_files]
        if not files:
            raise DicomError("read_series got an empty list of files")
        return files, False, None, []
    p = os.fspath(path_or_files)
    if os.path.isdir(p):
        dicomdir = find_dicomdir(p)
        files, missing = dicomdir_files(dicomdir) if dicomdir is not None else (list_files(p), [])
        if not files and not missing:
            raise DicomError("is an empty folder: no files to read", p)
        return files, True, p, missing
    if not os.path.exists(p):
        raise FileNotFoundError(f"No such file or folder: '{p}'")
    if os.path.basename(p).upper() == "DICOMDIR":
        files, missing = dicomdir_files(p)
        return files, True, p, missing
    return [p], False, p, []


def _header(path: str):
    """The dataset with its pixel data left in the file, or the DicomError that says why not."""
    try:
        return read_dataset(path, defer=True)
    except DicomError as exc:
        return exc
    except OSError as exc:  # vanished or unreadable since the folder was listed
        return DicomError(f"cannot be opened ({exc.strerror or exc})", path)


def _instance(ds) -> int:
    try:
        return int(get(ds, "InstanceNumber"))
    except (TypeError, ValueError):
        return 0


def _collect(files, from_folder: bool, report: SeriesReport, workers: int) -> Dict[str, List[_File]]:
    """Reads every header (pixel data deferred) and groups the image files by Series Instance UID.
    In a folder, files that are not DICOM or hold no pixel data are `ignored`; any other failure,
    and any non-image named explicitly, is `skipped`."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        headers = list(pool.map(_header, files))
    groups: Dict[str, List[_File]] = defaultdict(list)
    for path, ds in zip(files, headers):
        if isinstance(ds, DicomError):
            harmless = from_folder and isinstance(ds, NotDicomError)
            (report.ignored if harmless else report.skipped).append((path, ds.reason))
            continue
        if not has_pixels(ds):
            sop = ds.get("SOPClassUID")
            reason = f"no pixel data ({getattr(sop, 'name', sop) or 'no SOP class'})"
            (report.ignored if from_folder else report.skipped).append((path, reason))
            continue
        try:
            frames = frame_count(ds, path)
            planes = frame_planes(ds, path, frames)
            check_pixel_length(ds, path)
        except DicomError as exc:
            report.skipped.append((path, exc.reason))
            continue
        uid = str(get(ds, "SeriesInstanceUID", "") or "").strip() or "(no Series Instance UID)"
        sop = str(get(ds, "SOPInstanceUID", "") or "").strip() or None
        groups[uid].append(_File(path, ds, frames, planes, _instance(ds), sop))
    return groups


def _series_list(groups: Dict[str, List[_File]]) -> str:
    rows = []
    for uid, files in groups.items():
        ds = files[0].ds
        desc = str(ds.get("SeriesDescription", "") or "").strip()
        rows.append(f"{uid} ({ds.get('Modality', '?')} #{ds.get('SeriesNumber', '?')} '{desc}', "
                    f"{len(files)} file(s))")
    return "; ".join(rows)


def _choose(groups, series_uid: Optional[str], where, report: SeriesReport) -> List[_File]:
    """The files of the one series asked for, or of the only one there is. `where` is the folder
    or file to name in errors, None for a list of files."""
    subject = "" if where is not None else "the files given "
    if series_uid is not None:
        if series_uid not in groups:
            raise DicomError(f"{subject}{'have' if subject else 'has'} no image series {series_uid!r}; "
                             f"{'they have' if subject else 'it has'}: {_series_list(groups) or 'none'}", where)
        report.series_uid = series_uid
    elif len(groups) > 1:
        raise DicomError(f"{subject}{'hold' if subject else 'holds'} {len(groups)} image series, pass series_uid= "
                         f"to pick one: {_series_list(groups)}", where)
    elif not groups:
        reasons = report.skipped + report.ignored
        detail = "; ".join(f"'{p}': {r}" for p, r in reasons[:5]) + (" ..." if len(reasons) > 5 else "")
        raise DicomError(f"{subject}{'hold' if subject else 'holds'} no readable DICOM image "
                         f"({len(reasons)} file(s): {detail})", where, report=report)
    else:
        report.series_uid = next(iter(groups))
    chosen = groups[report.series_uid]
    report.files = len(chosen)
    return chosen


def _fmt(value) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], float):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def _frame_shape(ds) -> Tuple[int, int, int]:
    colour = int(get(ds, "SamplesPerPixel", 1) or 1) == 3 or \
        str(get(ds, "PhotometricInterpretation", "")).strip() == "PALETTE COLOR"
    return int(get(ds, "Rows", 0) or 0), int(get(ds, "Columns", 0) or 0), 3 if colour else 1


def _consistent(chosen: List[_File], report: SeriesReport) -> Tuple[List[_Slice], Tuple[int, int, int]]:
    """One slice per frame, keeping those whose size, orientation and pixel spacing are those of
    most slices; the rest are `skipped` and the mixture is reported."""
    slices = [(f, k, plane) for f in chosen for k, plane in enumerate(f.planes)]
    shapes = {id(f): _frame_shape(f.ds) for f in chosen}

    def key(s: _Slice):
        plane = s[2]
        orientation = None if plane.orientation is None else \
            tuple(float(v) for v in np.round(plane.orientation / ORIENTATION_TOL) * ORIENTATION_TOL)
        spacing = None if plane.pixel_spacing is None else tuple(round(v, 6) for v in plane.pixel_spacing)
        return shapes[id(s[0])], orientation, spacing

    keys = [key(s) for s in slices]
    majority = Counter(keys).most_common(1)[0][0]
    names = ("size", "orientation", "pixel spacing")
    for i, name in enumerate(names):
        counts = Counter(_fmt(k[i]) for k in keys)
        if len(counts) > 1:
            report.mixed[name] = dict(counts.most_common())
    kept, dropped = [], set()
    for s, k in zip(slices, keys):
        if k == majority:
            kept.append(s)
        elif id(s[0]) not in dropped:
            dropped.add(id(s[0]))
            what = [n for n, a, b in zip(names, k, majority) if a != b]
            report.skipped.append((s[0].path, f"{' and '.join(what)} differ from most of the series"))
    return kept, majority[0]


def _order(slices: List[_Slice], report: SeriesReport):
    """Slices sorted along the normal (duplicates after the first left out) and the StackGeometry;
    without positions, by Instance Number with geometry None (a problem when there are several)."""
    plane0 = slices[0][2]
    if len(slices) == 1:
        return slices, None
    if not all(p.position is not None and p.orientation is not None for _, _, p in slices):
        report.no_geometry = sorted({f.path for f, _, p in slices if p.position is None or p.orientation is None})
        report.notes.append("no positions: slices ordered by Instance Number, geometry unknown")
        return sorted(slices, key=lambda s: (s[0].instance, s[0].path, s[1])), None
    spacing = plane0.pixel_spacing or (1.0, 1.0)
    geometry = place_stack(np.array([p.position for _, _, p in slices]), plane0.orientation, spacing,
                           [(f.instance, f.path, k) for f, k, _ in slices])
    for group in geometry.duplicates:
        report.duplicates.append([slices[i][0].path + (f" [frame {slices[i][1]}]" if slices[i][0].frames > 1 else "")
                                  for i in group])
    report.gaps = geometry.gaps
    report.nonuniform = geometry.nonuniform
    report.step_range = geometry.step_range
    report.tilt_degrees = geometry.tilt_degrees
    if geometry.irregular_mm > TILT_PIXEL_FRACTION * min(spacing):
        report.irregular_mm = geometry.irregular_mm
    return [slices[i] for i in geometry.order], geometry


def _z_spacing_without_positions(ds, plane: Plane, report: SeriesReport) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            dz = float(get(ds, keyword))
        except (TypeError, ValueError):
            continue
        if dz > 0:
            report.notes.append(f"one slice or no positions: z spacing from {keyword}")
            return dz
    report.notes.append("no slice spacing known: 1 mm assumed")
    return 1.0


def _place(slices: List[_Slice], geometry, report: SeriesReport):
    """(spacing zyx, origin, direction, affine, positions) of the ordered slices."""
    plane0 = slices[0][2]
    orientation = plane0.orientation
    if orientation is None:
        orientation = np.array([1.0, 0, 0, 0, 1.0, 0])
        report.notes.append("no (0020,0037) Image Orientation (Patient): identity direction assumed")
    pixel_spacing = plane0.pixel_spacing
    if pixel_spacing is None:
        pixel_spacing = (1.0, 1.0)
        report.notes.append("no (0028,0030) Pixel Spacing: 1 mm assumed")
    positions = np.array([p.position if p.position is not None else np.full(3, np.nan) for _, _, p in slices])
    step_vector = None
    if geometry is not None:
        d = geometry.distances
        regular = not geometry.gaps and not geometry.nonuniform
        dz = float((d[-1] - d[0]) / (len(d) - 1)) if regular else geometry.step
        if geometry.tilt_degrees:
            step_vector = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        dz = _z_spacing_without_positions(slices[0][0].ds, plane0, report)
    origin = positions[0] if np.all(np.isfinite(positions[0])) else np.zeros(3)
    direction = direction_matrix(orientation)
    affine = affine_matrix(direction, (pixel_spacing[1], pixel_spacing[0], dz), origin, step_vector)
    spacing = (float(dz), float(pixel_spacing[0]), float(pixel_spacing[1]))
    return spacing, tuple(float(v) for v in origin), direction, affine, positions


def _decode(slices: List[_Slice], array: np.ndarray, pair, strict: bool, workers: int,
            report: SeriesReport) -> None:
    """Decodes every file once, `workers` at a time, each frame through the kernel straight into its
    slice of `array`. A file that fails raises (strict) or leaves NaN in its slices (lenient)."""
    targets: Dict[int, List[Tuple[int, int]]] = defaultdict(list)
    by_id = {}
    for k, (f, frame, _) in enumerate(slices):
        targets[id(f)].append((frame, k))
        by_id[id(f)] = f

    def fill(file_id: int) -> Optional[Tuple[str, str]]:
        f = by_id[file_id]
        try:
            stored, bits = stored_pixels(f.ds, f.path)
            transforms = modality_transforms(f.ds, f.path, stored.shape[0])
            invert = pair is not None and str(get(f.ds, "PhotometricInterpretation", "")).strip() == "MONOCHROME1"
            for frame, k in targets[file_id]:
                write_modality(f.ds, f.path, stored[frame:frame + 1], bits, array[k:k + 1], window=pair,
                               invert=invert, transforms=transforms[frame:frame + 1] if transforms else [])
            return None
        except DicomError as exc:
            if strict:
                raise
            for _, k in targets[file_id]:
                array[k] = np.nan
            return f.path, f"{exc.reason} (slice filled with NaN)"
        finally:
            f.ds = None  # drop the pixel bytes as soon as they are in the volume

    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))))
    try:
        for failure in pool.map(fill, list(targets)):
            if failure is not None:
                report.skipped.append(failure)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a strict failure: stop the rest
        raise
    pool.shutdown(wait=True)


def read_series(path_or_files, series_uid: Optional[str] = None, *, strict: bool = True,
                window=None, workers: Optional[int] = None) -> Volume:
    """Read one series -- a folder (with or without a DICOMDIR), one file (a multi-frame volume),
    or a list of files -- into a float32 Volume.

    Slices are ordered by their position along the slice normal; z spacing comes from the
    positions. Duplicates, missing slices, non-uniform spacing, mixed sizes or orientations,
    gantry tilt and files that cannot be read raise DicomError (its .report lists them) unless
    strict=False, which returns the volume and the report (volume.report). A folder holding
    several image series raises DicomError naming them all unless series_uid picks one.
    `window` is read()'s (a preset, (center, width) or 'file'), applied in the same pass.
    Headers are read and files decoded on `workers` threads (default: min(8, CPUs + 2)).
    """
    if not (isinstance(window, str) and window == "file"):
        resolve_window(window)  # a bad window fails before any file is read
    files, from_folder, source, missing = _inputs(path_or_files)
    report = SeriesReport(source=source)
    report.skipped.extend(missing)
    if workers is None:
        workers = min(8, (os.cpu_count() or 1) + 2)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    workers = min(workers, len(files))

    groups = _collect(files, from_folder, report, workers)
    where = source if source is not None else (files[0] if len(files) == 1 else None)
    chosen = _choose(groups, series_uid, where, report)
    slices, (rows, cols, spp) = _consistent(chosen, report)
    slices, geometry = _order(slices, report)
    report.slices = len(slices)
    if strict and report.problems:
        raise DicomError(f"series {report.series_uid} cannot be stacked as it is: " + "; ".join(report.problems) +
                         " (read_series(..., strict=False) returns the volume with this report)",
                         where, report=report)
    spacing, origin, direction, affine, positions = _place(slices, geometry, report)

    first = slices[0][0]
    pair = window_for(first.ds, window, first.path)
    meta = image_meta(first.ds, None)
    meta.update(path=source, slices=len(slices))
    array = np.empty((len(slices), rows, cols) + ((3,) if spp == 3 else ()), dtype=np.float32)
    _decode(slices, array, pair, strict, workers, report)
    return Volume(array=array, spacing=spacing, origin=origin, direction=direction, affine=affine, meta=meta,
                  sop_instance_uids=[f.sop_uid for f, _, _ in slices], files=[f.path for f, _, _ in slices],
                  positions=positions, report=report)
