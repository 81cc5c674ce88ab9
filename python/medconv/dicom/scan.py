"""scan(folder): one pass over headers (never pixel data), grouped patient -> study -> series."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ._files import find_dicomdir, list_files, read_dataset
from .errors import DicomError

__all__ = ["SeriesInfo", "SeriesList", "scan", "info", "dicomdir_files"]


@dataclass(frozen=True)
class SeriesInfo:
    """One series found by scan(): its identifiers, what it holds and its files (sorted by name)."""
    patient_id: Optional[str]
    patient_name: Optional[str]
    study_uid: Optional[str]
    study_date: Optional[str]
    study_description: Optional[str]
    series_uid: str
    series_number: Optional[int]
    series_description: Optional[str]
    modality: Optional[str]
    rows: Optional[int]
    columns: Optional[int]
    is_image: bool
    files: Tuple[str, ...]

    @property
    def n_files(self) -> int:
        return len(self.files)


class SeriesList(list):
    """The list of SeriesInfo that scan() returns, sorted patient -> study -> series number;
    `skipped` holds (file, reason) for files that are not DICOM or cannot be read, and str()
    prints the patient/study/series tree."""

    def __init__(self, items=(), skipped=(), root: Optional[str] = None, dicomdir: Optional[str] = None):
        super().__init__(items)
        self.skipped: List[Tuple[str, str]] = list(skipped)
        self.root = root
        self.dicomdir = dicomdir

    def __str__(self) -> str:
        lines = [f"{self.root}" + (f" (DICOMDIR {self.dicomdir})" if self.dicomdir else "") +
                 f": {len(self)} series, {sum(s.n_files for s in self)} file(s)"]
        patient = study = object()
        for s in self:
            if (s.patient_id, s.patient_name) != patient:
                patient, study = (s.patient_id, s.patient_name), object()
                lines.append(f"Patient {s.patient_id or '?'} {s.patient_name or ''}".rstrip())
            if s.study_uid != study:
                study = s.study_uid
                lines.append(f"  Study {s.study_date or '?'} '{s.study_description or ''}' {s.study_uid}")
            size = f"{s.rows}x{s.columns}" if s.is_image and s.rows else "no pixel data"
            lines.append(f"    Series #{s.series_number if s.series_number is not None else '?'} "
                         f"{s.modality or '?'} '{s.series_description or ''}': {s.n_files} file(s), {size}, "
                         f"{s.series_uid}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) that are not DICOM or cannot be read")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SeriesList({len(self)} series, {len(self.skipped)} skipped)"


def _text(value) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def dicomdir_files(dicomdir: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The files a DICOMDIR references, and (file, reason) for the ones that are missing."""
    return _dicomdir_entries(dicomdir)[1:]


def _dicomdir_leaves(ds) -> List[tuple]:
    """(record, its SERIES record or None) for every record that references a file, following the
    directory's offsets from the root entity; in sequence order when the offsets are unusable."""
    records = list(ds.get("DirectoryRecordSequence") or [])
    by_offset = {r.seq_item_tell: r for r in records if getattr(r, "seq_item_tell", None) is not None}
    out: List[tuple] = []
    seen: set = set()

    def walk(offset, series):
        while offset and offset in by_offset and offset not in seen:
            seen.add(offset)
            record = by_offset[offset]
            here = record if str(record.get("DirectoryRecordType", "")).strip() == "SERIES" else series
            if record.get("ReferencedFileID"):
                out.append((record, here))
            lower = record.get("OffsetOfReferencedLowerLevelDirectoryEntity")
            if lower:
                walk(lower, here)
            offset = record.get("OffsetOfTheNextDirectoryRecord")

    walk(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"), None)
    if len(seen) < len(records):  # broken or missing offsets: trust the order instead
        out, series = [], None
        for record in records:
            if str(record.get("DirectoryRecordType", "")).strip() == "SERIES":
                series = record
            if record.get("ReferencedFileID"):
                out.append((record, series))
    return out


def _dicomdir_entries(dicomdir: str):
    """([(path, series uid)], [paths], [(missing path, reason)]) for a DICOMDIR."""
    ds = read_dataset(dicomdir)
    root = os.path.dirname(os.path.abspath(dicomdir))
    records, files, missing = [], [], []
    for record, series in _dicomdir_leaves(ds):
        ref = record.ReferencedFileID
        parts = [ref] if isinstance(ref, str) else [str(p) for p in ref]
        path = os.path.join(root, *parts)
        if not os.path.isfile(path):
            missing.append((path, f"listed in DICOMDIR '{dicomdir}' but missing"))
            continue
        uid = _text(series.get("SeriesInstanceUID")) if series is not None else None
        files.append(path)
        records.append((path, uid))
    return records, files, missing


def _header_row(path: str):
    try:
        ds = read_dataset(path, header_only=True)
    except DicomError as exc:
        return path, None, exc.reason
    except OSError as exc:
        return path, None, f"cannot be opened ({exc.strerror or exc})"
    uid = _text(ds.get("SeriesInstanceUID"))
    if uid is None:
        sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "get", lambda k: None)(
            "MediaStorageSOPClassUID")
        return path, None, f"no (0020,000E) Series Instance UID ({getattr(sop, 'name', sop) or 'not an instance'})"
    return path, ds, None


def _info(ds, files, is_image=None) -> SeriesInfo:
    return SeriesInfo(
        patient_id=_text(ds.get("PatientID")), patient_name=_text(ds.get("PatientName")),
        study_uid=_text(ds.get("StudyInstanceUID")), study_date=_text(ds.get("StudyDate")),
        study_description=_text(ds.get("StudyDescription")),
        series_uid=_text(ds.get("SeriesInstanceUID")) or "",
        series_number=_int(ds.get("SeriesNumber")), series_description=_text(ds.get("SeriesDescription")),
        modality=_text(ds.get("Modality")), rows=_int(ds.get("Rows")), columns=_int(ds.get("Columns")),
        is_image=("Rows" in ds) if is_image is None else is_image, files=tuple(sorted(files)))


def _sorted(series: List[SeriesInfo]) -> List[SeriesInfo]:
    return sorted(series, key=lambda s: (s.patient_id or "", s.patient_name or "", s.study_date or "",
                                         s.study_uid or "", s.series_number if s.series_number is not None else -1,
                                         s.series_uid))


def scan(folder, *, workers: Optional[int] = None) -> SeriesList:
    """Every series under `folder`, from headers only (reading stops before pixel data).

    With a DICOMDIR at the top of the folder its records list the files and identifiers, and only
    the first file of each series is opened (for image size and description); otherwise every
    file is opened, `workers` at a time. Returns a SeriesList (a list of SeriesInfo) sorted by
    patient, study and series number; files that are not DICOM are in its .skipped.
    """
    root = os.fspath(folder)
    if os.path.isfile(root) and os.path.basename(root).upper() == "DICOMDIR":
        root = os.path.dirname(os.path.abspath(root))  # a DICOMDIR stands for its folder
    if not os.path.isdir(root):
        if os.path.isfile(root):
            ds = read_dataset(root, header_only=True)
            return SeriesList([_info(ds, [root])], root=root)
        raise FileNotFoundError(f"No such file or folder: '{root}'")
    if workers is None:
        workers = min(8, (os.cpu_count() or 1) + 2)
    dicomdir = find_dicomdir(root)
    if dicomdir is not None:
        records, _, missing = _dicomdir_entries(dicomdir)
        groups = {}
        for path, uid in records:
            groups.setdefault(uid or "(no SERIES record)", []).append(path)
        series, skipped = [], list(missing)
        for uid, files in groups.items():
            _, ds, reason = _header_row(sorted(files)[0])
            if ds is None:
                skipped.append((sorted(files)[0], reason))
                continue
            series.append(_info(ds, files))
        return SeriesList(_sorted(series), skipped, root=root, dicomdir=dicomdir)
    files = list_files(root)
    if not files:
        raise DicomError("is an empty folder: no files to scan", root)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(files)))) as pool:
        rows = list(pool.map(_header_row, files))
    groups, first, skipped = {}, {}, []
    for path, ds, reason in rows:
        if ds is None:
            skipped.append((path, reason))
            continue
        uid = _text(ds.get("SeriesInstanceUID"))
        groups.setdefault(uid, []).append(path)
        first.setdefault(uid, ds)
    series = [_info(first[uid], files) for uid, files in groups.items()]
    return SeriesList(_sorted(series), skipped, root=root)


def info(path) -> str:
    """A printable patient/study/series tree of a file or folder (what `medconv info PATH` shows)."""
    return str(scan(path))
