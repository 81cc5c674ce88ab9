"""medconv.dicom.read on real files that pydicom ships: pixels equal pydicom's pixel_array with
the modality LUT applied; lossless compressed files equal their uncompressed twin; meta and
windowing; colour, multi-frame, big-endian, deflate, palette."""
import copy
import os

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_windowing, get_decoder
from pydicom.uid import ExplicitVRLittleEndian

import medconv.dicom as md
from test_dicom_fixtures import sample_file

DICOMDIR_CR = os.path.join("dicomdirtests", "77654033", "CR1", "6154")  # a real MONOCHROME1 CR


def decodable(name):
    ds = pydicom.dcmread(sample_file(name), stop_before_pixels=True)
    ts = ds.file_meta.TransferSyntaxUID
    return not ts.is_compressed or get_decoder(ts).is_available


def needs_decoder(name):
    return pytest.param(name, marks=pytest.mark.skipif(
        not decodable(name), reason="no pydicom decoder plugin here (pip install 'medconv[codecs]')"))


def pydicom_modality(path):
    """The oracle: pydicom's own decode and modality LUT, as float32."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        return apply_color_lut(arr, ds).astype(np.float32)
    return apply_modality_lut(arr, ds).astype(np.float32)


NATIVE = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
          "MR_small_expb.dcm", "MR_small_RLE.dcm", "rtdose.dcm", "rtdose_1frame.dcm", "rtdose_expb.dcm",
          "rtdose_expb_1frame.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm", "ExplVR_BigEnd.dcm",
          "SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm",
          "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_32bit.dcm",
          "SC_rgb_rle_32bit_2frame.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmd.dcm",
          "examples_overlay.dcm", "examples_palette.dcm", "examples_rgb_color.dcm", "image_dfl.dcm",
          "liver_1frame.dcm", "liver_expb_1frame.dcm", DICOMDIR_CR]
COMPRESSED = ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "JPGExtended.dcm",
              "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_jpeg_dcmtk.dcm", "693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm",
              "JPEGLSNearLossless_16.dcm", "examples_ybr_color.dcm"]


@pytest.mark.parametrize("name", NATIVE + [needs_decoder(n) for n in COMPRESSED])
def test_pixels_equal_pydicom_with_modality_lut(name):
    path = sample_file(name)
    image = md.read(path)
    expected = pydicom_modality(path)
    assert image.pixels.dtype == np.float32
    np.testing.assert_array_equal(image.pixels, expected)


def test_padded_pixel_data_reads_without_pydicom_warning():
    # pydicom warns about the 128 excess bytes when it decodes; the direct view ignores them quietly
    image = md.read(sample_file("MR_small_padded.dcm"))
    np.testing.assert_array_equal(image.pixels, md.read(sample_file("MR_small.dcm")).pixels)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  needs_decoder("MR_small_jp2klossless.dcm"),
                                  needs_decoder("MR_small_jpeg_ls_lossless.dcm")])
def test_lossless_variants_equal_the_uncompressed_file(name):
    np.testing.assert_array_equal(md.read(sample_file(name)).pixels, md.read(sample_file("MR_small.dcm")).pixels)


def test_rle_dose_equals_uncompressed_dose():
    np.testing.assert_array_equal(md.read(sample_file("rtdose_rle.dcm")).pixels,
                                  md.read(sample_file("rtdose.dcm")).pixels)


def test_ct_is_in_hounsfield_units_and_meta_matches_the_dataset():
    path = sample_file("CT_small.dcm")
    image = md.read(path)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(image.pixels, ds.pixel_array.astype(np.float64) * 1.0 - 1024.0)
    m = image.meta
    assert m["patient_id"] == ds.PatientID and m["patient_name"] == str(ds.PatientName)
    assert m["study_uid"] == ds.StudyInstanceUID and m["series_uid"] == ds.SeriesInstanceUID
    assert m["sop_instance_uid"] == ds.SOPInstanceUID and m["modality"] == "CT"
    assert m["rows"] == 128 and m["columns"] == 128 and m["frames"] == 1
    assert m["pixel_spacing"] == tuple(float(v) for v in ds.PixelSpacing)
    assert m["slice_thickness"] == float(ds.SliceThickness)
    assert m["image_position"] == tuple(float(v) for v in ds.ImagePositionPatient)
    assert m["image_orientation"] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert m["photometric"] == "MONOCHROME2"
    assert (m["rescale_slope"], m["rescale_intercept"]) == (1.0, -1024.0)
    assert m["transfer_syntax"] == ExplicitVRLittleEndian and m["transfer_syntax_name"] == "Explicit VR Little Endian"
    assert image.dataset.SOPInstanceUID == ds.SOPInstanceUID and image.path == path
    assert "128x128" in repr(image)


def test_meta_window_and_multiframe_shape():
    mr = md.read(sample_file("MR_small.dcm"))
    assert mr.meta["window_center"] == (600.0,) and mr.meta["window_width"] == (1600.0,)
    dose = md.read(sample_file("rtdose.dcm"))
    assert dose.pixels.shape == (15, 10, 10) and dose.meta["frames"] == 15
    assert dose.meta["dose_grid_scaling"] == float(pydicom.dcmread(sample_file("rtdose.dcm")).DoseGridScaling)


def test_read_accepts_a_dataset():
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    np.testing.assert_array_equal(md.read(ds).pixels, md.read(sample_file("CT_small.dcm")).pixels)


def test_ybr_comes_out_rgb():
    image = md.read(sample_file("SC_ybr_full_422_uncompressed.dcm"))
    ds = pydicom.dcmread(sample_file("SC_ybr_full_422_uncompressed.dcm"))
    from pydicom.pixels import convert_color_space

    rgb = convert_color_space(pydicom.pixels.pixel_array(ds, as_rgb=False), "YBR_FULL", "RGB")
    assert image.pixels.shape == (100, 100, 3)
    np.testing.assert_array_equal(image.pixels, rgb.astype(np.float32))


# --- windows ----------------------------------------------------------------------------------

def test_read_window_preset_equals_window_of_modality_values():
    path = sample_file("CT_small.dcm")
    hu = md.read(path).pixels
    for preset in md.WINDOW_PRESETS:
        np.testing.assert_array_equal(md.read(path, window=preset).pixels, md.window(hu, preset))
    np.testing.assert_array_equal(md.read(path, window=(40, 400)).pixels, md.window(hu, 40, 400))


def test_read_window_file_uses_the_files_own_window():
    path = sample_file("MR_small.dcm")  # (0028,1050) 600, (0028,1051) 1600
    np.testing.assert_array_equal(md.read(path, window="file").pixels, md.window(md.read(path).pixels, 600, 1600))


def test_monochrome1_is_inverted_only_for_display():
    path = sample_file(DICOMDIR_CR)
    plain = md.read(path)
    assert plain.meta["photometric"] == "MONOCHROME1"
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(plain.pixels, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))
    shown = md.read(path, window="file")
    np.testing.assert_array_equal(shown.pixels, md.window(plain.pixels, 1600, 2800, invert=True))
    # the inversion happens before the one rounding to float32, so 1 - window() differs by an ulp at most
    np.testing.assert_allclose(shown.pixels, 1.0 - md.window(plain.pixels, 1600, 2800), atol=6e-8, rtol=0)
    assert shown.pixels[plain.pixels > 3000].max(initial=0.0) == 0.0  # bright bone shows dark


def test_windowed_pixels_are_close_to_pydicom_apply_windowing():
    path = sample_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 40, 400
    hu = apply_modality_lut(ds.pixel_array, ds)
    ref = apply_windowing(hu, ds)  # the same DICOM linear function, mapped to the stored range
    lo, hi = (apply_windowing(np.array([v], np.float64), ds)[0] for v in (-1e9, 1e9))
    np.testing.assert_allclose(md.read(path, window=(40, 400)).pixels, (ref - lo) / (hi - lo), atol=1e-6)


# --- files written here: per-frame rescale, modality LUT, bits stored -----------------------------

def test_per_frame_rescale_of_an_enhanced_multiframe(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    frames = np.stack([ds.pixel_array + k for k in range(3)]).astype(np.int16)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    del ds.RescaleSlope, ds.RescaleIntercept
    per_frame = []
    for k in range(3):
        item = Dataset()
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = str(0.5 * (k + 1)), str(-100 * k), "HU"
        item.PixelValueTransformationSequence = Sequence([pvt])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = md.read(path)
    expected = np.stack([(frames[k].astype(np.float64) * 0.5 * (k + 1) - 100 * k) for k in range(3)])
    np.testing.assert_array_equal(image.pixels, expected.astype(np.float32))
    assert image.meta["rescale_slope"] == 0.5 and image.meta["rescale_type"] == "HU"


def test_modality_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(sample_file("MR_small.dcm"))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = list(range(0, 3 * 4096, 3))
    item["LUTDescriptor"].VR = "US"
    item["LUTData"].VR = "US"
    item.ModalityLUTType = "US"
    ds.ModalityLUTSequence = Sequence([item])
    path = tmp_path / "lut.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = md.read(path)
    ref = pydicom.dcmread(path)
    np.testing.assert_array_equal(image.pixels, apply_modality_lut(ref.pixel_array, ref).astype(np.float32))
    assert image.meta["has_modality_lut"]


@pytest.mark.parametrize("signed, raw, expected", [(0, 0xF123, 0x123), (1, 0x0FFF, -1), (1, 0xF7FF, 2047),
                                                   (1, 0x0800, -2048)])
def test_bits_stored_high_bits_are_ignored_like_pydicom(tmp_path, signed, raw, expected):
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = signed, 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = np.full((128, 128), raw, np.uint16).tobytes()
    path = tmp_path / "b12.dcm"
    ds.save_as(path, enforce_file_format=True)
    pixels = md.read(path).pixels
    assert np.all(pixels == expected)
    np.testing.assert_array_equal(pixels, pydicom.dcmread(path).pixel_array.astype(np.float32))


def test_uint8_and_int32_stored_values(tmp_path):
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    rng = np.random.default_rng(0)
    for bits, signed, dtype in [(8, 0, np.uint8), (32, 1, np.int32), (32, 0, np.uint32)]:
        d = copy.deepcopy(ds)
        arr = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (128, 128), dtype=dtype, endpoint=True)
        d.BitsAllocated = d.BitsStored = bits
        d.HighBit = bits - 1
        d.PixelRepresentation = signed
        d.RescaleSlope, d.RescaleIntercept = "0.25", "3"
        d.PixelData = arr.tobytes()
        path = tmp_path / f"{bits}_{signed}.dcm"
        d.save_as(path, enforce_file_format=True)
        np.testing.assert_array_equal(md.read(path).pixels, (arr.astype(np.float64) * 0.25 + 3).astype(np.float32))
