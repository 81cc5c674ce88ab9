"""The series report: every trap raises DicomError by default, and strict=False returns the volume
with the report (gaps, duplicates, non-uniform spacing, tilt, mixed sizes, missing geometry)."""
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import medconv.dicom as md
from test_dicom_fixtures import ds_text, write_series


def rewrite(path, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def test_missing_slice(tmp_path):
    s = write_series(tmp_path, n=10)
    os.remove(s.paths[4])
    with pytest.raises(md.DicomError, match=r"missing slices: 1 after slice 3 \(step 5\.000 mm\)") as info:
        md.read_series(tmp_path)
    assert info.value.report.gaps == [(3, pytest.approx(5.0), 1)]
    volume = md.read_series(tmp_path, strict=False)
    keep = [k for k in range(10) if k != 4]
    np.testing.assert_array_equal(volume.array, s.modality[keep])
    assert volume.spacing[0] == pytest.approx(2.5) and volume.report.gaps and not volume.report.ok


def test_duplicate_position(tmp_path):
    s = write_series(tmp_path, n=6)
    ds = pydicom.dcmread(s.paths[2])
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 99
    twin = os.path.join(tmp_path, "twin.dcm")
    ds.save_as(twin, enforce_file_format=True)
    with pytest.raises(md.DicomError, match="1 duplicate position"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    assert volume.array.shape[0] == 6
    np.testing.assert_array_equal(volume.array, s.modality)
    assert sorted(volume.report.duplicates[0]) == sorted([s.paths[2], twin])
    assert volume.report.skipped == []
    assert s.paths[2] in volume.files  # the lower Instance Number is kept


def test_non_uniform_spacing(tmp_path):
    s = write_series(tmp_path, n=6, shuffle=False)
    p = s.positions[3] + 0.4 * s.normal
    rewrite(s.paths[3], ImagePositionPatient=[ds_text(v) for v in p])
    with pytest.raises(md.DicomError, match="non-uniform slice spacing: steps from 2.1000 to 2.9000 mm"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    assert volume.report.nonuniform and volume.spacing[0] == pytest.approx(2.5)


def test_gantry_tilt(tmp_path):
    s = write_series(tmp_path, n=8, tilt_degrees=15.0)
    with pytest.raises(md.DicomError, match=r"gantry tilt of 15\.000 degrees"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    assert volume.report.tilt_degrees == pytest.approx(15.0, abs=1e-3)
    np.testing.assert_array_equal(volume.array, s.modality)
    assert volume.spacing[0] == pytest.approx(2.5)  # along the normal
    np.testing.assert_allclose(volume.direction[:, 2], s.normal, atol=1e-9)  # orthogonal, as ITK
    for k in range(8):  # the affine keeps every slice where the file puts it (sheared)
        np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*s.positions[k], 1], atol=1e-4)


def test_positions_off_the_stack_axis(tmp_path):
    s = write_series(tmp_path, n=6, shuffle=False)
    p = s.positions[2] + np.array([3.0, 0, 0])
    rewrite(s.paths[2], ImagePositionPatient=[ds_text(v) for v in p])
    with pytest.raises(md.DicomError, match=r"slice positions stray up to .* mm off the stack's axis"):
        md.read_series(tmp_path)


def test_mixed_sizes_keep_the_majority_when_lenient(tmp_path):
    s = write_series(tmp_path, n=6)
    small = write_series(tmp_path, n=2, series_uid=s.series_uid, rows_cols=(64, 64), prefix="small_",
                         origin=(-40.0, -55.5, 0.0), seed=5)
    with pytest.raises(md.DicomError, match=r"mixed size: 128x128x1 \(6 slices\), 64x64x1 \(2 slices\)"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    np.testing.assert_array_equal(volume.array, s.modality)
    assert sorted(p for p, _ in volume.report.skipped) == sorted(small.paths)
    assert all("size differ" in r for _, r in volume.report.skipped)


def test_mixed_orientation(tmp_path):
    s = write_series(tmp_path, n=5)
    rewrite(s.paths[1], ImageOrientationPatient=["0", "1", "0", "0", "0", "-1"])
    with pytest.raises(md.DicomError, match="mixed orientation"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    assert volume.array.shape[0] == 4 and s.paths[1] not in volume.files


def test_mixed_pixel_spacing(tmp_path):
    s = write_series(tmp_path, n=4)
    rewrite(s.paths[0], PixelSpacing=["0.8", "0.8"])
    with pytest.raises(md.DicomError, match="mixed pixel spacing"):
        md.read_series(tmp_path)


def test_slices_without_positions(tmp_path):
    s = write_series(tmp_path, n=4)
    for p in s.paths:
        rewrite(p, ImagePositionPatient=None)
    with pytest.raises(md.DicomError, match=r"4 slice\(s\) without \(0020,0032\) Image Position"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    numbers = [pydicom.dcmread(p).InstanceNumber for p in volume.files]
    assert numbers == sorted(numbers)
    assert any("ordered by Instance Number" in n for n in volume.report.notes)


def test_truncated_file_in_a_series(tmp_path):
    s = write_series(tmp_path, n=5, shuffle=False)
    top = s.paths[-1]
    Path(top).write_bytes(Path(top).read_bytes()[:-7000])
    with pytest.raises(md.DicomError, match=r"1 file\(s\) skipped: .*slice_004\.dcm.*truncated file"):
        md.read_series(tmp_path)
    volume = md.read_series(tmp_path, strict=False)
    np.testing.assert_array_equal(volume.array, s.modality[:4])
    assert volume.report.skipped[0][0] == top


def test_pixel_data_that_fails_to_decode_is_nan_when_lenient(tmp_path):
    from pydicom.uid import JPEG2000Lossless, RLELossless

    s = write_series(tmp_path, n=3, shuffle=False)
    ds = pydicom.dcmread(s.paths[1])
    ds.compress(RLELossless)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless  # RLE data labelled JPEG 2000: no decoder can read it
    ds.save_as(s.paths[1], enforce_file_format=True)
    with pytest.raises(md.DicomError, match=r"Pixel Data cannot be decoded|medconv\[codecs\]") as info:
        md.read_series(tmp_path)
    assert info.value.path == s.paths[1]
    volume = md.read_series(tmp_path, strict=False)
    assert np.isnan(volume.array[1]).all()
    np.testing.assert_array_equal(volume.array[[0, 2]], s.modality[[0, 2]])
    assert "filled with NaN" in volume.report.skipped[0][1]


def test_report_text_lists_every_problem(tmp_path):
    s = write_series(tmp_path, n=8)
    os.remove(s.paths[5])
    shutil.copy(s.paths[0], os.path.join(tmp_path, "copy.dcm"))
    with pytest.raises(md.DicomError) as info:
        md.read_series(tmp_path)
    report = info.value.report
    assert len(report.problems) == 2  # the duplicate group, the gap
    text = str(report)
    assert "problem: 1 duplicate position" in text and "problem: missing slices" in text
    assert "strict=False" in str(info.value)
