"""read_series of a 512x512xN int16 CT series (N = 300 by default): medconv beside a plain pydicom
loop (dcmread, sort by position, pixel_array, modality LUT, np.stack) and SimpleITK's
ImageSeriesReader, in one run. Every reader's volume is checked against the pydicom loop first.

    pytest benchmarks/bench_dicom.py --benchmark-only          # MEDCONV_BENCH_SLICES=300
    pytest benchmarks/bench_dicom.py --benchmark-only --benchmark-columns=min,median,max,rounds

The series is written once per run by a fixture from the CT slice that pydicom ships (tiled to
512x512, shifted per slice), under shuffled file names with Instance Numbers that disagree with
the positions, as in tests/test_dicom_fixtures.py.
"""
import copy
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import medconv
import medconv.dicom as md

SLICES = int(os.environ.get("MEDCONV_BENCH_SLICES", "300"))
GROUP = f"read_series 512x512x{SLICES} int16"


def _write(args):
    base, tile, folder, k, name, uid = args
    ds = copy.deepcopy(base)
    arr = (tile + 3 * k).astype(np.int16)
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = arr.tobytes()
    ds.ImagePositionPatient = ["-125", "-125", f"{-300 + 1.25 * k:g}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.48828125", "0.48828125"]
    ds.SliceThickness = "2.5"
    ds.InstanceNumber = SLICES - k
    ds.SeriesInstanceUID = uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(os.path.join(folder, name), enforce_file_format=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct512")
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    tile = np.tile(base.pixel_array, (4, 4))
    names = [f"{n:06d}.dcm" for n in np.random.default_rng(0).permutation(SLICES)]
    uid = generate_uid()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(_write, [(base, tile, str(folder), k, names[k], uid) for k in range(SLICES)]))
    files = sorted(str(p) for p in folder.iterdir())
    return str(folder), files


def pydicom_loop(folder, files):
    """What users write today, done right: sort by position on the normal, rescale in float64."""
    datasets = [pydicom.dcmread(f) for f in files]
    o = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(o[:3], o[3:])
    datasets.sort(key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)))
    return np.stack([apply_modality_lut(d.pixel_array, d) for d in datasets]).astype(np.float32)


def simpleitk(folder, files):
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(reader.Execute())


def medconv_default(folder, files):
    return md.read_series(folder).array


def medconv_one_thread(folder, files):
    saved = medconv.get_num_threads()
    medconv.set_num_threads(1)
    try:
        return md.read_series(folder, workers=1).array
    finally:
        medconv.set_num_threads(saved)


READERS = {
    "medconv": medconv_default,
    "medconv-1thread": medconv_one_thread,
    "pydicom-loop": pydicom_loop,
    "simpleitk": simpleitk,
}


@pytest.fixture(scope="module")
def expected(series):
    return pydicom_loop(*series)


@pytest.mark.parametrize("reader", list(READERS))
def test_read_series(benchmark, series, expected, reader):
    fn = READERS[reader]
    np.testing.assert_array_equal(fn(*series), expected)  # check first, then time
    benchmark.group = GROUP
    benchmark.extra_info.update(slices=SLICES, stored_MB=round(expected.size * 2 / 1e6, 1),
                                threads=medconv.get_num_threads(), cpus=os.cpu_count())
    benchmark.pedantic(fn, args=series, rounds=5, iterations=1, warmup_rounds=1)
    median = benchmark.stats.stats.median
    benchmark.extra_info["stored_MB_per_s"] = round(expected.size * 2 / 1e6 / median, 1)
    benchmark.extra_info["slices_per_s"] = round(SLICES / median, 1)
