"""What read_series accepts: folders holding other series, non-image and non-DICOM files, a
DICOMDIR, explicit file lists; and what it refuses: empty folders, ambiguous folders."""
import gc
import os
import re
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet

import medconv.dicom as md
from test_dicom_fixtures import sample_file, write_series


def test_folder_with_two_series_names_both_and_asks_for_one(tmp_path):
    a = write_series(tmp_path, n=4, prefix="a")
    b = write_series(tmp_path, n=3, prefix="b", seed=1)
    with pytest.raises(md.DicomError, match=rf"holds 2 image series, pass series_uid= to pick one: .*"
                                            rf"({re.escape(a.series_uid)}.*{re.escape(b.series_uid)}|"
                                            rf"{re.escape(b.series_uid)}.*{re.escape(a.series_uid)})"):
        md.read_series(tmp_path)
    np.testing.assert_array_equal(md.read_series(tmp_path, a.series_uid).array, a.modality)
    np.testing.assert_array_equal(md.read_series(tmp_path, series_uid=b.series_uid).array, b.modality)
    with pytest.raises(md.DicomError, match=r"has no image series '1\.2\.3'; it has: "):
        md.read_series(tmp_path, series_uid="1.2.3")


def test_rt_plan_and_junk_among_the_images_are_ignored(tmp_path):
    s = write_series(tmp_path / "series", n=4)
    shutil.copy(sample_file("rtplan.dcm"), tmp_path / "series" / "plan.dcm")
    shutil.copy(sample_file("test-SR.dcm"), tmp_path / "series" / "report.dcm")
    (tmp_path / "series" / "README.txt").write_text("not an image")
    (tmp_path / "series" / "sub").mkdir()
    (tmp_path / "series" / "sub" / "junk.bin").write_bytes(os.urandom(300))
    volume = md.read_series(tmp_path / "series")
    np.testing.assert_array_equal(volume.array, s.modality)
    ignored = dict(volume.report.ignored)
    assert set(ignored) == {str(tmp_path / "series" / n) for n in ("plan.dcm", "report.dcm", "README.txt",
                                                                    os.path.join("sub", "junk.bin"))}
    assert "no pixel data (RT Plan Storage)" in ignored[str(tmp_path / "series" / "plan.dcm")]
    assert volume.report.ok


def test_a_list_of_files_from_two_series(tmp_path):
    a = write_series(tmp_path, n=2, prefix="a")
    b = write_series(tmp_path, n=2, prefix="b", seed=1)
    with pytest.raises(md.DicomError, match=r"^the files given hold 2 image series, pass series_uid="):
        md.read_series(a.paths + b.paths)
    with pytest.raises(md.DicomError, match=r"^the files given hold no readable DICOM image \(2 file"):
        md.read_series([sample_file("README.txt"), sample_file("rtplan.dcm")])
    np.testing.assert_array_equal(md.read_series(a.paths + b.paths, b.series_uid).array, b.modality)


def test_a_non_image_file_named_explicitly_is_a_problem(tmp_path):
    s = write_series(tmp_path, n=3)
    with pytest.raises(md.DicomError, match=r"1 file\(s\) skipped: .*rtplan\.dcm.*no pixel data"):
        md.read_series(s.paths + [sample_file("rtplan.dcm")])
    volume = md.read_series(s.paths + [sample_file("rtplan.dcm")], strict=False)
    np.testing.assert_array_equal(volume.array, s.modality)


def test_empty_and_useless_inputs(tmp_path):
    with pytest.raises(md.DicomError, match=rf"is an empty folder: no files to read in '{re.escape(str(tmp_path))}'"):
        md.read_series(tmp_path)
    (tmp_path / "a.txt").write_text("hello")
    shutil.copy(sample_file("rtplan.dcm"), tmp_path / "plan.dcm")
    with pytest.raises(md.DicomError, match=r"holds no readable DICOM image \(2 file\(s\): .*is not a DICOM file"):
        md.read_series(tmp_path)
    with pytest.raises(md.DicomError, match="read_series got an empty list of files"):
        md.read_series([])
    with pytest.raises(ValueError, match="window must be one of"):  # before any file is read
        md.read_series(tmp_path / "nowhere", window="lungs")
    with pytest.raises(FileNotFoundError):
        md.read_series(tmp_path / "nowhere")


def test_single_file_path_and_pathlike(tmp_path):
    s = write_series(tmp_path, n=1)
    volume = md.read_series(s.paths[0])
    np.testing.assert_array_equal(volume.array, s.modality)


def write_dicomdir(source_paths, out):
    """A DICOMDIR and its files, written by pydicom's FileSet under out/."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # FileSet leaves its staging folder to the GC
        fs = FileSet()
        for p in source_paths:
            fs.add(p)
        fs.write(out)
        del fs
        gc.collect()
    return out


def test_folder_with_a_dicomdir(tmp_path):
    s = write_series(tmp_path / "src", n=5)
    write_dicomdir(s.paths, tmp_path / "media")
    volume = md.read_series(tmp_path / "media")
    np.testing.assert_array_equal(volume.array, s.modality)
    assert all(p.startswith(str(tmp_path / "media")) for p in volume.files)


def test_the_dicomdir_file_itself(tmp_path):
    s = write_series(tmp_path / "src", n=3)
    write_dicomdir(s.paths, tmp_path / "media")
    np.testing.assert_array_equal(md.read_series(tmp_path / "media" / "DICOMDIR").array, s.modality)
    assert len(md.scan(tmp_path / "media" / "DICOMDIR")) == 1


def test_dicomdir_entry_whose_file_is_missing(tmp_path):
    s = write_series(tmp_path / "src", n=5, shuffle=False)
    write_dicomdir(s.paths, tmp_path / "media")
    volume = md.read_series(tmp_path / "media", strict=False)
    files = sorted(volume.files)
    os.remove(files[0])
    with pytest.raises(md.DicomError, match="listed in DICOMDIR .* but missing"):
        md.read_series(tmp_path / "media")


DICOMDIR_TESTS = os.path.dirname(sample_file(os.path.join("dicomdirtests", "DICOMDIR")))


def real(*parts):
    return os.path.join(DICOMDIR_TESTS, *parts)


def test_real_dicomdir_folder_lists_its_series():
    with pytest.raises(md.DicomError, match="holds 13 image series, pass series_uid="):
        md.read_series(DICOMDIR_TESTS)
    ct5 = pydicom.dcmread(real("98892001", "CT5N", "2062"))
    volume = md.read_series(DICOMDIR_TESTS, series_uid=ct5.SeriesInstanceUID)
    assert volume.array.shape == (5, 16, 16) and volume.meta["modality"] == "CT"
    assert volume.spacing[0] == pytest.approx(2.5)
    assert volume.report.ignored == [] and volume.report.ok


def test_real_series_with_a_gap():  # four CT slices: one at z=-99.48, three at 103.02 .. 105.52
    with pytest.raises(md.DicomError, match=r"missing slices: 161 after slice 0 \(step 202\.500 mm\)"):
        md.read_series(real("77654033", "CT2"))
    volume = md.read_series(real("77654033", "CT2"), strict=False)
    assert volume.array.shape == (4, 16, 16) and volume.spacing[0] == pytest.approx(1.25)


@pytest.mark.parametrize("series", [("98892001", "CT2N"), ("98892003", "MR700")], ids=["scouts", "radial"])
def test_real_series_with_mixed_orientations(series):
    with pytest.raises(md.DicomError, match="mixed orientation"):
        md.read_series(real(*series))


def test_real_localizer_folder_holds_three_series():
    with pytest.raises(md.DicomError, match="holds 3 image series.*'FAST LOCALIZER', 1 file"):
        md.read_series(real("98892003", "MR2"))
