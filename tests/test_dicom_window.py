"""medconv.dicom.window: the DICOM linear window to [0, 1], presets, MONOCHROME1 inversion."""
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

import medconv.dicom as md


def reference(x, center, width, invert=False):
    """PS3.3 C.11.2.1.2.1 written out piecewise, in float64, mapped to [0, 1]."""
    x = np.asarray(x, np.float64)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, ((x - (center - 0.5)) / max(width - 1, 1e-300) + 0.5)))
    return 1.0 - y if invert else y


HU = np.linspace(-2000, 3000, 10007).astype(np.float32)


@pytest.mark.parametrize("center, width", [(40, 80), (-600, 1500), (50, 350), (0, 2), (100.5, 3.25)])
@pytest.mark.parametrize("invert", [False, True])
def test_window_follows_the_standard(center, width, invert):
    got = md.window(HU, center, width, invert=invert)
    assert got.dtype == np.float32 and got.shape == HU.shape
    np.testing.assert_allclose(got, reference(HU, center, width, invert), atol=1e-7, rtol=0)


def test_window_matches_pydicom_apply_windowing():
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = "MONOCHROME2", 16, 0
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ref = apply_windowing(HU.astype(np.float64), ds)
    np.testing.assert_allclose(md.window(HU, 40, 400), ref / 65535.0, atol=1e-6)


def test_width_one_is_a_threshold():
    x = np.array([-1.0, 9.0, 9.5, 9.6, 10.0, 11.0], np.float32)
    np.testing.assert_array_equal(md.window(x, 10, 1), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(md.window(x, 10, 1, invert=True), [1, 1, 1, 0, 0, 0])


def test_presets():
    assert set(md.WINDOW_PRESETS) == {"brain", "subdural", "stroke", "lung", "mediastinum", "abdomen", "liver", "bone"}
    for name, (c, w) in md.WINDOW_PRESETS.items():
        np.testing.assert_array_equal(md.window(HU, name), md.window(HU, c, w))
    with pytest.raises(TypeError):
        md.WINDOW_PRESETS["mine"] = (1, 2)  # read-only


def test_dtypes_and_out():
    ints = np.arange(-100, 100, dtype=np.int16)
    np.testing.assert_array_equal(md.window(ints, 0, 50), md.window(ints.astype(np.float32), 0, 50))
    f64 = HU.astype(np.float64)
    np.testing.assert_array_equal(md.window(f64, "lung"), md.window(HU, "lung"))
    buf = HU.copy()
    out = md.window(buf, "bone", out=buf)
    assert out is buf and buf.max() <= 1 and buf.min() >= 0
    vol = np.zeros((2, 3, 4), np.float32)
    md.window(np.full((3, 4), 40.0, np.float32), 40, 80, out=vol[1])
    assert np.all(vol[0] == 0) and np.allclose(vol[1], 0.5, atol=0.01)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((HU, "lungs"), {}, ValueError, "window must be one of"),
    ((HU, "lung", 100), {}, ValueError, "give a preset name or \\(center, width\\), not both"),
    ((HU, 40), {}, ValueError, "window width is missing"),
    ((HU, 40, 0.5), {}, ValueError, "window width must be >= 1"),
    ((HU, float("nan"), 10), {}, ValueError, "window center must be a finite number"),
    ((HU, "file"), {}, ValueError, "window='file' takes the file's own window"),
    ((HU.astype(bool), 40, 80), {}, TypeError, "array must hold numbers"),
    ((HU.astype(np.int64), 40, 80), {}, TypeError, "convert to float32 first"),
    ((HU, 40, 80), {"out": np.zeros(3, np.float32)}, ValueError, "out must be a float32 numpy array of shape"),
])
def test_window_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        md.window(*args, **kwargs)
