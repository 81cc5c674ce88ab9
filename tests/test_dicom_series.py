"""medconv.dicom.read_series on clean series: order by position, geometry, values, windows, threads."""
import json
import os

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

import medconv.dicom as md
from test_dicom_fixtures import OBLIQUE, ds_text, sample_file, write_series

OBLIQUE6 = np.concatenate([OBLIQUE[:, 0], OBLIQUE[:, 1]])


def check_geometry(volume, s):
    """Everything about the volume's place in space, against what the writer put in the files."""
    n = len(s.paths)
    row, col = s.orientation[:3], s.orientation[3:]
    assert volume.array.shape == (n,) + s.stored.shape[1:]
    np.testing.assert_allclose(volume.spacing, (s.spacing, *s.pixel_spacing), atol=1e-5)
    np.testing.assert_allclose(volume.origin, s.positions[0], atol=1e-9)
    np.testing.assert_allclose(volume.direction, np.column_stack([row, col, s.normal]), atol=1e-9)
    np.testing.assert_allclose(volume.positions, s.positions, atol=1e-9)
    a = volume.affine
    for k in range(n):
        np.testing.assert_allclose(a @ [0, 0, k, 1], [*s.positions[k], 1], atol=1e-4)
    i, j = 5, 9
    expected = s.positions[0] + i * s.pixel_spacing[1] * row + j * s.pixel_spacing[0] * col
    np.testing.assert_allclose(a @ [i, j, 0, 1], [*expected, 1], atol=1e-6)
    np.testing.assert_allclose(a[:3, :3], volume.direction * [volume.spacing[2], volume.spacing[1], volume.spacing[0]],
                               atol=1e-5)
    assert volume.files == s.paths
    assert volume.sop_instance_uids == s.sop_uids


@pytest.mark.parametrize("orientation", [None, OBLIQUE6, [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1]],
                         ids=["axial", "oblique", "sagittal", "coronal"])
def test_slices_are_ordered_by_position_not_by_name_or_instance_number(tmp_path, orientation):
    s = write_series(tmp_path, n=9, orientation=orientation)
    volume = md.read_series(tmp_path)
    np.testing.assert_array_equal(volume.array, s.modality)
    check_geometry(volume, s)
    assert volume.report.ok and volume.report.problems == [] and volume.report.slices == 9
    assert volume.meta["modality"] == "CT" and volume.meta["slices"] == 9
    assert volume.meta["series_uid"] == s.series_uid


def test_spacing_comes_from_positions_not_slice_thickness(tmp_path):
    write_series(tmp_path, n=5, spacing=1.25)  # Slice Thickness says 5.0
    assert md.read_series(tmp_path).spacing[0] == pytest.approx(1.25)


def test_files_listed_explicitly_in_any_order(tmp_path):
    s = write_series(tmp_path, n=6)
    volume = md.read_series(list(reversed(s.paths)))
    np.testing.assert_array_equal(volume.array, s.modality)
    assert volume.files == s.paths


def test_per_slice_rescale(tmp_path):
    slopes = [0.5, 1.0, 2.0, 0.25, 3.0]
    s = write_series(tmp_path, n=5, slope=slopes, intercept=[-10, 0, 10, 20, 30], shuffle=False)
    np.testing.assert_array_equal(md.read_series(tmp_path).array, s.modality)


@pytest.mark.parametrize("window", ["lung", "brain", (40, 400)])
def test_window_in_the_same_pass(tmp_path, window):
    write_series(tmp_path, n=4)
    plain = md.read_series(tmp_path).array
    np.testing.assert_array_equal(md.read_series(tmp_path, window=window).array,
                                  md.window(plain, *((window,) if isinstance(window, str) else window)))


def test_monochrome1_series_is_inverted_only_with_a_window(tmp_path):
    s = write_series(tmp_path, n=3, photometric="MONOCHROME1")
    np.testing.assert_array_equal(md.read_series(tmp_path).array, s.modality)
    shown = md.read_series(tmp_path, window=(0, 2000)).array
    np.testing.assert_allclose(shown, 1 - md.window(s.modality, 0, 2000), atol=6e-8, rtol=0)


def test_thread_count_does_not_change_the_result(tmp_path):
    write_series(tmp_path, n=12)
    one = md.read_series(tmp_path, workers=1)
    many = md.read_series(tmp_path, workers=8)
    np.testing.assert_array_equal(one.array, many.array)
    assert one.files == many.files


def test_rle_compressed_series_equals_the_uncompressed_one(tmp_path):
    s = write_series(tmp_path / "raw", n=4, shuffle=False)
    os.makedirs(tmp_path / "rle")
    for p in s.paths:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(tmp_path / "rle" / os.path.basename(p), enforce_file_format=True)
    np.testing.assert_array_equal(md.read_series(tmp_path / "rle").array, md.read_series(tmp_path / "raw").array)


def test_a_multiframe_dose_grid_is_a_volume():
    path = sample_file("rtdose.dcm")
    volume = md.read_series(path)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(volume.array, md.read(path).pixels)
    assert volume.spacing == (5.0, 10.0, 10.0)
    assert volume.origin == tuple(float(v) for v in ds.ImagePositionPatient)
    np.testing.assert_allclose(volume.positions[:, 2], float(ds.ImagePositionPatient[2]) + np.arange(15) * 5.0)


def test_an_enhanced_multiframe_with_per_frame_positions(tmp_path):
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    order = [2, 0, 3, 1]  # frames stored out of spatial order
    frames = np.stack([(ds.pixel_array + 10 * k).astype(np.int16) for k in order])
    ds.NumberOfFrames = 4
    ds.PixelData = frames.tobytes()
    shared = Dataset()
    ori, mea = Dataset(), Dataset()
    ori.ImageOrientationPatient = [ds_text(v) for v in OBLIQUE6]
    mea.PixelSpacing, mea.SliceThickness = ["0.5", "0.75"], "9"
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([ori]), Sequence([mea])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, positions = [], []
    for k in order:
        item, pos = Dataset(), Dataset()
        p = [float(ds_text(v)) for v in np.array([10.0, -20.0, 30.0]) + 3.0 * k * OBLIQUE[:, 2]]
        pos.ImagePositionPatient = [ds_text(v) for v in p]
        item.PlanePositionSequence = Sequence([pos])
        per_frame.append(item)
        positions.append(p)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, keyword)
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    volume = md.read_series(path)
    inverse = np.argsort(order)
    np.testing.assert_array_equal(volume.array, frames[inverse].astype(np.float32) - 1024)
    np.testing.assert_allclose(volume.positions, np.array(positions)[inverse], atol=1e-9)
    np.testing.assert_allclose(volume.spacing, (3.0, 0.5, 0.75), atol=1e-5)
    np.testing.assert_allclose(volume.direction[:, 2], OBLIQUE[:, 2], atol=1e-6)


def test_a_single_slice(tmp_path):
    s = write_series(tmp_path, n=1)
    volume = md.read_series(tmp_path)
    assert volume.array.shape == (1, 128, 128)
    assert volume.spacing[0] == 5.0 and any("z spacing from" in n for n in volume.report.notes)
    np.testing.assert_array_equal(volume.array, s.modality)


def test_save_writes_the_array_and_its_geometry(tmp_path):
    write_series(tmp_path / "in", n=3)
    volume = md.read_series(tmp_path / "in")
    volume.save(tmp_path / "out.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), volume.array)
    geometry = json.loads((tmp_path / "out.json").read_text())
    assert geometry["shape"] == [3, 128, 128]
    np.testing.assert_allclose(geometry["affine"], volume.affine)
    assert geometry["spacing_zyx"] == list(volume.spacing) and geometry["meta"]["modality"] == "CT"
    assert "Volume(3x128x128" in repr(volume) and "3 slice(s)" in str(volume.report)


def test_a_real_series_from_the_dicomdir_tests():
    folder = os.path.dirname(sample_file(os.path.join("dicomdirtests", "98892001", "CT5N", "2062")))
    volume = md.read_series(folder)
    datasets = [pydicom.dcmread(os.path.join(folder, f)) for f in os.listdir(folder)]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))  # axial: z is the normal
    expected = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                         for d in datasets]).astype(np.float32)
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.sop_instance_uids == [d.SOPInstanceUID for d in datasets]


def test_a_colour_series(tmp_path):
    src = pydicom.dcmread(sample_file("examples_rgb_color.dcm"))
    expected = []
    for k in range(3):
        ds = pydicom.dcmread(sample_file("examples_rgb_color.dcm"))
        rgb = np.roll(src.pixel_array, 5 * k, axis=0)
        ds.PixelData = rgb.tobytes()
        ds.ImagePositionPatient = ["0", "0", str(2 - k)]  # written top-down
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.2", "0.2"]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(tmp_path / f"{k}.dcm", enforce_file_format=True)
        expected.append(rgb)
    volume = md.read_series(tmp_path)
    assert volume.array.shape == (3, 240, 320, 3)
    np.testing.assert_array_equal(volume.array, np.stack(expected[::-1]).astype(np.float32))


def test_workers_must_be_positive(tmp_path):
    write_series(tmp_path, n=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive int or None"):
            md.read_series(tmp_path, workers=bad)
