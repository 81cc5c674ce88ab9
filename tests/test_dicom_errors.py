"""Bad input to medconv.dicom raises DicomError (a ValueError) naming the file and, where one
element is at fault, the tag -- never a hang, never a bare pydicom traceback."""
import os
import re
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.pixels import get_decoder

import medconv.dicom as md
from medconv.dicom.errors import NotDicomError, tag_text
from test_dicom_fixtures import sample_file


def raises_naming(path, match):
    """pytest.raises(DicomError) whose message names `path` and matches `match`."""
    return pytest.raises(md.DicomError, match=rf"(?s){match}.*in '{re.escape(os.fspath(path))}'")


def test_dicom_error_is_a_value_error_with_path_and_tag():
    err = md.DicomError("missing", "slice_012.dcm", tag=0x00281053)
    assert isinstance(err, ValueError)
    assert str(err) == "(0028,1053) Rescale Slope missing in 'slice_012.dcm'"
    assert err.path == "slice_012.dcm" and err.tag == 0x00281053
    assert tag_text("PixelData") == "(7FE0,0010) Pixel Data"
    assert tag_text(0x00091001) == "(0009,1001) Private tag"


def test_truncated_pixel_data_from_pydicom():
    path = sample_file("MR_truncated.dcm")
    with raises_naming(path, r"\(7FE0,0010\) Pixel Data has 8130 bytes where .* need 8192: truncated file"):
        md.read(path)


@pytest.mark.parametrize("keep", [150, 600, 1200, 5000, 20000, 39000])
def test_file_truncated_anywhere(tmp_path, keep):
    raw = Path(sample_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(raw[:keep])
    with pytest.raises(md.DicomError, match=re.escape(str(path))):
        md.read(path)


def test_truncated_compressed_pixel_data(tmp_path):
    raw = Path(sample_file("MR_small_RLE.dcm")).read_bytes()
    path = tmp_path / "cut_rle.dcm"
    path.write_bytes(raw[: len(raw) - 1500])
    with pytest.warns(UserWarning, match="End of file reached before delimiter"):  # pydicom's, at parse
        with pytest.raises(md.DicomError, match=re.escape(str(path))):
            md.read(path)


@pytest.mark.parametrize("content", [b"", b"hello, not DICOM\n" * 20, bytes(range(256)) * 4, b"\x00" * 131])
def test_not_dicom(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(NotDicomError, match=rf"is not a DICOM file .* in '{re.escape(str(path))}'"):
        md.read(path)


def test_not_dicom_real_files():
    for name in ("README.txt", "crayons.icc", "no_meta.dcm"):
        with raises_naming(sample_file(name), "is not a DICOM file"):
            md.read(sample_file(name))


@pytest.mark.parametrize("name, kind", [("rtplan.dcm", "RT Plan Storage"), ("rtplan_truncated.dcm", "RT Plan Storage"),
                                        ("rtstruct.dcm", "RT Structure Set Storage"), ("test-SR.dcm", "Comprehensive SR"),
                                        ("waveform_ecg.dcm", "12-lead ECG"),
                                        ("ExplVR_LitEndNoMeta.dcm", "RT Ion Plan Storage")])
def test_dicom_without_pixel_data(name, kind):
    path = sample_file(name)
    with raises_naming(path, rf"\(7FE0,0010\) Pixel Data missing: not an image \({kind}"):
        md.read(path)


def test_a_folder_is_not_a_file(tmp_path):
    with raises_naming(tmp_path, "is a folder, not a file: use read_series"):
        md.read(tmp_path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        md.read(tmp_path / "nope.dcm")


def test_invalid_number_of_frames_names_the_tag():
    path = sample_file("badVR.dcm")
    with pytest.warns(UserWarning, match="Invalid value for VR IS: '1A'"):  # pydicom's own warning
        with raises_naming(path, r"\(0028,0008\) Number of Frames is not an integer: '1A'"):
            md.read(path)


def _ct_copy(tmp_path, name="x.dcm", **changes):
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rescale_slope_missing_beside_an_intercept(tmp_path):
    path = _ct_copy(tmp_path, "slice_012.dcm", RescaleSlope=None)
    with raises_naming(path, r"\(0028,1053\) Rescale Slope missing \(but \(0028,1052\) Rescale Intercept is present\)"):
        md.read(path)


def test_rescale_intercept_missing_beside_a_slope(tmp_path):
    path = _ct_copy(tmp_path, RescaleIntercept=None)
    with raises_naming(path, r"\(0028,1052\) Rescale Intercept missing"):
        md.read(path)


def test_rescale_slope_empty(tmp_path):
    path = _ct_copy(tmp_path, RescaleSlope="")
    with raises_naming(path, r"\(0028,1053\) Rescale Slope is empty"):
        md.read(path)


def test_missing_rows(tmp_path):
    path = _ct_copy(tmp_path, Rows=None)
    with raises_naming(path, r"\(0028,0010\) Rows missing"):
        md.read(path)


def test_bits_stored_larger_than_allocated(tmp_path):
    path = _ct_copy(tmp_path, BitsStored=17)
    with raises_naming(path, r"\(0028,0101\) Bits Stored 17 does not fit"):
        md.read(path)


def test_bad_orientation_in_a_series(tmp_path):
    _ct_copy(tmp_path, ImageOrientationPatient=[1, 0, 0, 1, 0, 0])
    with pytest.raises(md.DicomError, match=r"\(0020,0037\) Image Orientation \(Patient\) is not two orthogonal"):
        md.read_series(tmp_path)


def test_window_file_without_a_window(tmp_path):
    path = sample_file("CT_small.dcm")
    with raises_naming(path, r"\(0028,1050\) Window Center missing: the file recommends no window"):
        md.read(path, window="file")


COMPRESSED = ["JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_gdcm.dcm"]


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_without_a_decoder_names_the_syntax_and_the_extra(name):
    path = sample_file(name)
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if get_decoder(ts).is_available:
        pytest.skip(f"a decoder for {ts.name} is installed here")
    with raises_naming(path, rf"\(0002,0010\) Transfer Syntax UID '{re.escape(ts.name)}' \({ts}\) .*"
                             r"pip install 'medconv\[codecs\]'"):
        md.read(path)


def test_compressed_error_in_a_series_names_the_file(tmp_path):
    name = "MR_small_jpeg_ls_lossless.dcm"
    ts = pydicom.dcmread(sample_file(name), stop_before_pixels=True).file_meta.TransferSyntaxUID
    if get_decoder(ts).is_available:
        pytest.skip("JPEG-LS decoder installed here")
    shutil.copy(sample_file(name), tmp_path / "a.dcm")
    with pytest.raises(md.DicomError, match=r"medconv\[codecs\].*a\.dcm"):
        md.read_series(tmp_path)


def test_errors_of_window_and_rescale_arguments():
    with pytest.raises(ValueError, match="window must be one of"):
        md.read(sample_file("CT_small.dcm"), window="lungs")
    with pytest.raises(ValueError, match="window width must be >= 1"):
        md.read(sample_file("CT_small.dcm"), window=(40, 0))
    with pytest.raises(ValueError, match="a preset name or a \\(center, width\\) pair"):
        md.read(sample_file("CT_small.dcm"), window=40)


def test_garbage_in_a_decimal_string_names_the_tag(tmp_path):
    # the file says Rescale Slope 'abc ': pydicom reads it as text, medconv names the tag and the value
    path = _ct_copy(tmp_path, "garbage.dcm", RescaleSlope="7.77")
    raw = path.read_bytes()
    assert raw.count(b"7.77") == 1
    path.write_bytes(raw.replace(b"7.77", b"abc "))
    with raises_naming(path, r"\(0028,1053\) Rescale Slope is not a number: 'abc'"):
        md.read(path)
