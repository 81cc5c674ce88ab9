"""Synthetic DICOM series for the medconv.dicom tests, written with pydicom from real pixel data.

Imported by the other tests/test_dicom_*.py files (pytest puts tests/ on sys.path); it holds no
tests of its own except the checks of the writer itself at the bottom.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds


def sample_file(name: str) -> str:
    """A file that pydicom ships (no download)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def rotation(axis, degrees: float) -> np.ndarray:
    """3x3 rotation about a unit axis (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    t = np.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


OBLIQUE = rotation([1, 2, 3], 25.0)  # columns: row direction, column direction, normal


@dataclass
class Series:
    """What write_series wrote, in true spatial order (k = 0 is the lowest along the normal)."""
    folder: str
    paths: List[str]            # per slice, in spatial order
    stored: np.ndarray          # (n, rows, cols) stored values, spatial order
    slope: List[float]
    intercept: List[float]
    positions: np.ndarray       # (n, 3)
    orientation: np.ndarray     # (6,)
    pixel_spacing: tuple        # (row spacing, column spacing)
    spacing: float              # along the normal
    series_uid: str
    sop_uids: List[str]
    extra: List[str] = field(default_factory=list)

    @property
    def modality(self) -> np.ndarray:
        s = np.asarray(self.slope)[:, None, None]
        b = np.asarray(self.intercept)[:, None, None]
        return (self.stored.astype(np.float64) * s + b).astype(np.float32)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])


def ds_text(value: float) -> str:
    """A number as a Decimal String of at most 16 characters, as scanners write them."""
    return format_number_as_ds(float(value))


def ct_slice() -> pydicom.Dataset:
    return pydicom.dcmread(sample_file("CT_small.dcm"))


def write_series(folder, n: int = 8, *, spacing: float = 2.5, orientation=None, origin=(-40.0, -55.5, 120.25),
                 pixel_spacing=(0.7, 0.6), tilt_degrees: float = 0.0, shuffle: bool = True, seed: int = 0,
                 slope=1.0, intercept=-1024.0, photometric: str = "MONOCHROME2", series_uid: Optional[str] = None,
                 rows_cols: Optional[tuple] = None, prefix: str = "") -> Series:
    """Writes n CT slices of CT_small.dcm's pixels (each shifted so slices differ) into folder, at
    positions origin + k * spacing * normal (plus k * spacing * tan(tilt) along the column
    direction for a gantry tilt), under shuffled file names, with Instance Numbers that disagree
    with the order and a Slice Thickness that is wrong on purpose."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = ct_slice()
    pixels = base.pixel_array
    if rows_cols is not None:
        pixels = pixels[: rows_cols[0], : rows_cols[1]].copy()
    if orientation is None:
        orientation = np.array([1.0, 0, 0, 0, 1.0, 0])
    orientation = np.array([float(ds_text(v)) for v in orientation])
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    series_uid = series_uid or generate_uid()
    study_uid = base.StudyInstanceUID
    instance_numbers = rng.permutation(n) + 1
    names = [f"{prefix}{name:06d}.dcm" for name in rng.permutation(10 * n)[:n]] if shuffle else \
        [f"{prefix}slice_{k:03d}.dcm" for k in range(n)]
    slopes = list(np.broadcast_to(np.asarray(slope, dtype=np.float64), (n,)))
    intercepts = list(np.broadcast_to(np.asarray(intercept, dtype=np.float64), (n,)))
    stored, positions, paths, sops = [], [], [], []
    for k in range(n):
        ds = copy.deepcopy(base)
        arr = np.roll(pixels, 3 * k, axis=1).astype(np.int16) + np.int16(k)
        pos = np.asarray(origin) + k * spacing * normal + k * spacing * np.tan(np.radians(tilt_degrees)) * col
        pos = np.array([float(ds_text(v)) for v in pos])  # what the file holds
        ds.Rows, ds.Columns = arr.shape
        ds.PixelData = arr.tobytes()
        ds.ImagePositionPatient = [ds_text(v) for v in pos]
        ds.ImageOrientationPatient = [ds_text(v) for v in orientation]
        ds.PixelSpacing = [f"{v}" for v in pixel_spacing]
        ds.SliceThickness = "5.0"  # wrong on purpose: spacing comes from the positions
        ds.SliceLocation = str(float(pos[2]))
        ds.InstanceNumber = int(instance_numbers[k])
        ds.RescaleSlope = f"{slopes[k]:g}"
        ds.RescaleIntercept = f"{intercepts[k]:g}"
        ds.PhotometricInterpretation = photometric
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesDescription = f"synthetic {n} slices"
        path = os.path.join(folder, names[k])
        ds.save_as(path, enforce_file_format=True)
        stored.append(arr)
        positions.append(pos)
        paths.append(path)
        sops.append(ds.SOPInstanceUID)
    return Series(os.fspath(folder), paths, np.stack(stored), slopes, intercepts, np.array(positions),
                  orientation, tuple(pixel_spacing), spacing, series_uid, sops)


# --- checks of the writer itself -------------------------------------------------------------

def test_writer_shuffles_names_and_instance_numbers(tmp_path):
    s = write_series(tmp_path, n=6)
    by_name = sorted(range(6), key=lambda k: os.path.basename(s.paths[k]))
    numbers = [pydicom.dcmread(p).InstanceNumber for p in s.paths]
    assert by_name != list(range(6)), "file names must not follow the spatial order"
    assert numbers != sorted(numbers), "instance numbers must not follow the spatial order"


def test_writer_positions_follow_the_normal(tmp_path):
    s = write_series(tmp_path, n=4, orientation=np.concatenate([OBLIQUE[:, 0], OBLIQUE[:, 1]]), spacing=1.25)
    d = s.positions @ s.normal
    np.testing.assert_allclose(np.diff(d), 1.25, atol=1e-5)
