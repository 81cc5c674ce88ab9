"""medconv.dicom._values.get, the raw-bytes fast path for per-slice elements, against pydicom's own
conversion on every element of that kind in pydicom's test files (all encodings)."""
import os
import warnings

import pydicom
import pytest
from pydicom.datadict import keyword_for_tag

from medconv.dicom._values import get
from test_dicom_fixtures import sample_file

FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
         "rtdose.dcm", "rtdose_expb.dcm", "ExplVR_BigEnd.dcm", "examples_palette.dcm", "image_dfl.dcm",
         os.path.join("dicomdirtests", "77654033", "CR1", "6154")]
VRS = {"DS", "IS", "US", "SS", "UL", "SL", "UI", "CS"}


def plain(value):
    if isinstance(value, str):
        return value
    if hasattr(value, "__iter__"):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value


@pytest.mark.parametrize("name", FILES)
def test_fast_values_equal_pydicom(name):
    path = sample_file(name)
    fast = pydicom.dcmread(path)
    slow = pydicom.dcmread(path)
    checked = 0
    for elem in slow:
        keyword = keyword_for_tag(elem.tag)
        if not keyword or elem.VR not in VRS or elem.VM == 0:
            continue
        expected = plain(elem.value)
        if elem.VR in ("UI", "CS") and isinstance(expected, str):
            expected = expected.strip(" \x00")
        got = get(fast, keyword)
        assert got == expected, f"{keyword} ({elem.VR}): {got!r} != {expected!r}"
        checked += 1
    assert checked > 5


def test_absent_empty_and_default():
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    assert get(ds, "NumberOfFrames") is None and get(ds, "NumberOfFrames", 1) == 1
    ds.SeriesDescription = ""
    assert get(ds, "SeriesDescription") == ""
    with pytest.raises(KeyError):
        get(ds, "NotAKeyword")


def test_converted_elements_and_deferred_files():
    ds = pydicom.dcmread(sample_file("CT_small.dcm"), defer_size=16)
    _ = ds.ImagePositionPatient  # converted by pydicom first
    assert get(ds, "ImagePositionPatient") == [float(v) for v in ds.ImagePositionPatient]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get(ds, "Rows") == 128
