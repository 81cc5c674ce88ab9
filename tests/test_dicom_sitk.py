"""read_series against SimpleITK's ImageSeriesReader (GDCM): array, spacing, origin, direction."""
import os

import numpy as np
import pytest

import medconv.dicom as md
from test_dicom_fixtures import OBLIQUE, sample_file, write_series

sitk = pytest.importorskip("SimpleITK")


def itk_read(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    image = reader.Execute()
    return image, sitk.GetArrayFromImage(image)


def assert_same_as_itk(volume, folder):
    image, array = itk_read(folder)
    assert volume.array.shape == array.shape
    np.testing.assert_allclose(volume.array, array, rtol=1e-6, atol=1e-4)
    # ITK orders spacing and origin x, y, z; medconv's spacing is (z, y, x) like the array
    np.testing.assert_allclose(volume.spacing[::-1], image.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(volume.origin, image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(volume.direction, np.array(image.GetDirection()).reshape(3, 3), atol=1e-6)
    ijk = np.array([7, 11, volume.array.shape[0] - 1])
    np.testing.assert_allclose((volume.affine @ [*ijk, 1])[:3],
                               image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]), atol=1e-4)


ORIENTATIONS = {
    "axial": None,
    "oblique": np.concatenate([OBLIQUE[:, 0], OBLIQUE[:, 1]]),
    "sagittal": [0, 1, 0, 0, 0, -1],
    "coronal": [1, 0, 0, 0, 0, -1],
    "flipped": [-1, 0, 0, 0, -1, 0],
}


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_geometry_and_values_equal_simpleitk(tmp_path, name):
    write_series(tmp_path, n=7, orientation=ORIENTATIONS[name], spacing=1.5, pixel_spacing=(0.8, 0.65))
    assert_same_as_itk(md.read_series(tmp_path), tmp_path)


def test_per_slice_rescale_equals_simpleitk(tmp_path):
    write_series(tmp_path, n=5, slope=[1, 2, 0.5, 4, 1], intercept=[-1024, -2048, 0, 10, -1000], shuffle=False)
    assert_same_as_itk(md.read_series(tmp_path), tmp_path)


def test_a_real_series_equals_simpleitk():
    folder = os.path.dirname(sample_file(os.path.join("dicomdirtests", "98892001", "CT5N", "2062")))
    assert_same_as_itk(md.read_series(folder), folder)
