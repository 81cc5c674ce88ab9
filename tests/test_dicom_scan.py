"""medconv.dicom.scan: headers only, grouped patient -> study -> series, DICOMDIR when present."""
import os
import re
import shutil
from pathlib import Path

import pydicom
import pytest

import medconv.dicom as md
from test_dicom_fixtures import sample_file, write_series

TESTS = os.path.dirname(sample_file(os.path.join("dicomdirtests", "DICOMDIR")))
PATIENT_FOLDERS = ["77654033", "98892001", "98892003"]


def summary(series_list):
    return sorted((s.series_uid, s.n_files, s.modality, s.rows, s.columns) for s in series_list)


def test_real_dicomdir():
    found = md.scan(TESTS)
    assert found.dicomdir == os.path.join(TESTS, "DICOMDIR")
    assert len(found) == 13 and found.skipped == []
    assert sum(s.n_files for s in found) == 31
    assert [s.patient_id for s in found] == sorted(s.patient_id for s in found)
    ct5 = pydicom.dcmread(os.path.join(TESTS, "98892001", "CT5N", "2062"))
    (series,) = [s for s in found if s.series_uid == ct5.SeriesInstanceUID]
    assert (series.n_files, series.rows, series.columns, series.modality) == (5, 16, 16, "CT")
    assert series.patient_name == str(ct5.PatientName) and series.is_image
    assert sorted(series.files) == sorted(str(p) for p in Path(TESTS, "98892001", "CT5N").iterdir())
    text = str(found)
    assert "Patient 77654033 Doe^Archibald" in text and "Series #5 CT" in text and "13 series, 31 file(s)" in text
    assert md.info(TESTS) == text


def test_walking_the_same_files_finds_the_same_series(tmp_path):
    for name in PATIENT_FOLDERS:
        shutil.copytree(os.path.join(TESTS, name), tmp_path / name)
    walked = md.scan(tmp_path)
    assert walked.dicomdir is None
    assert summary(walked) == summary(md.scan(TESTS))


@pytest.mark.parametrize("variant", ["DICOMDIR-reordered", "DICOMDIR-nooffset", "DICOMDIR-implicit", "DICOMDIR-bigEnd"])
def test_dicomdir_variants(tmp_path, variant):
    for name in PATIENT_FOLDERS:
        os.symlink(os.path.join(TESTS, name), tmp_path / name)
    shutil.copy(os.path.join(TESTS, variant), tmp_path / "DICOMDIR")
    assert summary(md.scan(tmp_path)) == summary(md.scan(TESTS))


def test_synthetic_folder_with_plan_junk_and_truncated_pixels(tmp_path):
    a = write_series(tmp_path / "a", n=3, prefix="a")
    b = write_series(tmp_path / "b", n=2, prefix="b", seed=3)
    shutil.copy(sample_file("rtplan.dcm"), tmp_path / "plan.dcm")
    (tmp_path / "notes.txt").write_text("not DICOM")
    top = Path(a.paths[0])
    top.write_bytes(top.read_bytes()[:-5000])  # scan never reads pixel data: still listed
    found = md.scan(tmp_path)
    uids = {s.series_uid: s for s in found}
    assert set(uids) == {a.series_uid, b.series_uid, pydicom.dcmread(sample_file("rtplan.dcm")).SeriesInstanceUID}
    assert uids[a.series_uid].n_files == 3 and uids[b.series_uid].n_files == 2
    plan = [s for s in found if not s.is_image]
    assert len(plan) == 1 and plan[0].modality == "RTPLAN" and "no pixel data" in str(found)
    assert [p for p, _ in found.skipped] == [str(tmp_path / "notes.txt")]
    assert "is not a DICOM file" in found.skipped[0][1]


def test_scan_a_single_file_and_bad_paths(tmp_path):
    found = md.scan(sample_file("CT_small.dcm"))
    assert len(found) == 1 and found[0].modality == "CT" and found[0].n_files == 1
    with pytest.raises(md.DicomError, match=rf"is an empty folder: no files to scan in '{re.escape(str(tmp_path))}'"):
        md.scan(tmp_path)
    with pytest.raises(FileNotFoundError):
        md.scan(tmp_path / "missing")
    with pytest.raises(md.DicomError, match="is not a DICOM file"):
        md.scan(sample_file("README.txt"))
    assert repr(found) == "SeriesList(1 series, 0 skipped)"


def test_empty_dicomdir(tmp_path):
    shutil.copy(os.path.join(TESTS, "DICOMDIR-empty.dcm"), tmp_path / "DICOMDIR")
    found = md.scan(tmp_path)
    assert len(found) == 0 and found.dicomdir is not None
