"""medconv.pipeline: Preprocess (validation, JSON, stored in the model file) and Predictor on DICOM
files, series folders and folder trees written from pydicom's real pixel data."""
from __future__ import annotations

import json
import os
import struct
import threading

import numpy as np
import pydicom
import pytest

import medconv
import medconv.functional as F
import medconv.nn as nn
from medconv import dicom
from medconv.pipeline import Predictor, Preprocess, find_inputs, load_unit
from test_dicom_fixtures import sample_file, write_series

CLASSES = ["normal", "abnormal"]


def slice_model(out=2, seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, out))


def volume_model(seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(4, 3), nn.Softmax(dim=1))


@pytest.fixture
def slice_file(tmp_path):
    path = tmp_path / "slice.safetensors"
    nn.save(slice_model(), path, preprocess=Preprocess(window="lung", size=(32, 32), classes=CLASSES))
    return str(path)


@pytest.fixture
def tree(tmp_path):
    """Two CT series in a folder tree, plus a file that is not DICOM."""
    root = tmp_path / "tree"
    a = write_series(root / "a", n=3, seed=1)
    b = write_series(root / "deeper" / "b", n=4, seed=2, spacing=1.5)
    (root / "notes.txt").write_text("not DICOM")
    return root, a, b


def truncated_copy(folder, name="broken.dcm"):
    """A copy of pydicom's truncated MR file (a real file whose pixel data is short)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(sample_file("MR_truncated.dcm"), "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    return path


# ------------------------------------------------------------------------ Preprocess


@pytest.mark.parametrize("kwargs, message", [
    (dict(window="sunset"), r"window must be one of \["),
    (dict(window=(40,)), "window must be a preset name or a .center, width. pair"),
    (dict(window=(40, 0)), "window width must be >= 1"),
    (dict(size=(32, 32, 32)), "size must be a tuple of 2 positive ints"),
    (dict(size=(0, 32)), "size must be a tuple of positive ints"),
    (dict(size=32), "size must be a tuple"),
    (dict(spacing=-1.0), "spacing must hold positive finite numbers"),
    (dict(spacing=(1.0, 1.0, 1.0)), "spacing must be a positive number of mm or a tuple of 2"),
    (dict(spacing=float("nan")), "spacing must hold positive finite numbers"),
    (dict(size=(8, 8), spacing=1.0), "give size or spacing, not both"),
    (dict(input="series"), r"input must be one of \('slice', 'volume'\)"),
    (dict(input="volume", size=(1, 2, 3, 4)), "size must be a tuple of 3 or 2 positive ints"),
    (dict(input="volume", spacing=(1.0, 1.0)), "spacing must be a positive number of mm or a tuple of 3"),
    (dict(classes="ab"), "classes must be a list of class names"),
    (dict(classes=[]), "classes must be a non-empty list"),
    (dict(classes=["a", ""]), "classes must be a non-empty list of non-empty strings"),
    (dict(classes=["a", "a"]), "classes must be unique"),
])
def test_preprocess_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Preprocess(**kwargs)


def test_preprocess_json_round_trip():
    for p in [Preprocess(), Preprocess(window="brain", size=(64, 48), classes=["a", "b", "c"]),
              Preprocess(window=(-600, 1500), spacing=(2.0, 0.5, 0.5), input="volume"),
              Preprocess(window="file", spacing=0.7)]:
        back = Preprocess.from_json(p.to_json())
        assert back == p and back.to_json() == p.to_json()
        assert Preprocess.from_json(json.loads(p.to_json())) == p
    p = Preprocess(window=[40, 400], size=[8, 8], classes=("x", "y"))
    assert p.window == (40.0, 400.0) and p.size == (8, 8) and p.classes == ("x", "y")
    assert repr(p) == "Preprocess(window=(40.0, 400.0), size=(8, 8), classes=('x', 'y'))"


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"window": "lung", "crop": 3}', r"unknown fields \['crop'\]"),
    ('{"version": 9}', "version 9"),
    ('{"input": "pixel"}', "input must be one of"),
])
def test_preprocess_from_json_refuses_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        Preprocess.from_json(text)


def test_prepare_image_uses_medconv_interpolate():
    rng = np.random.default_rng(0)
    img = rng.random((40, 30), dtype=np.float32)
    p = Preprocess(size=(16, 24))
    expected = F.interpolate(img[None, None], size=(16, 24), mode="bilinear", align_corners=False)[0]
    np.testing.assert_array_equal(p.prepare_image(img), expected)
    assert Preprocess().prepare_image(img).shape == (1, 40, 30)
    rgb = rng.random((10, 12, 3), dtype=np.float32)
    np.testing.assert_array_equal(Preprocess().prepare_image(rgb), np.moveaxis(rgb, -1, 0))
    # target spacing: 40 rows of 0.5 mm -> 20 rows of 1 mm; 30 columns of 1 mm -> 15 of 2 mm
    assert Preprocess(spacing=(1.0, 2.0)).prepare_image(img, (0.5, 1.0)).shape == (1, 20, 15)
    with pytest.raises(ValueError, match="no usable pixel spacing"):
        Preprocess(spacing=1.0).prepare_image(img, None)
    vol = rng.random((6, 20, 20), dtype=np.float32)
    assert Preprocess(input="volume", size=(3, 10, 10)).prepare_volume(vol).shape == (1, 3, 10, 10)
    assert Preprocess(input="volume", size=(10, 10)).prepare_volume(vol).shape == (1, 6, 10, 10)
    assert Preprocess(input="volume", spacing=2.0).prepare_volume(vol, (4.0, 1.0, 1.0)).shape == (1, 12, 10, 10)


def test_apply_window_is_the_readers_window():
    hu = dicom.read(sample_file("CT_small.dcm")).pixels
    windowed = dicom.read(sample_file("CT_small.dcm"), window="lung").pixels
    np.testing.assert_array_equal(Preprocess(window="lung").apply_window(hu), windowed)
    np.testing.assert_array_equal(Preprocess(window=(-600, 1500)).apply_window(hu), windowed)
    np.testing.assert_array_equal(Preprocess().apply_window(hu), hu)
    with pytest.raises(ValueError, match="window='file' takes each file's own window"):
        Preprocess(window="file").apply_window(hu)


# ------------------------------------------------------------------------ the model file


def _header(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _rewrite(path, out, **meta_changes):
    header, data = _header(path)
    meta = {**header["__metadata__"], **meta_changes}
    meta = {k: v for k, v in meta.items() if v is not None}
    raw = json.dumps({**header, "__metadata__": meta}).encode()
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)
    return out


def test_save_stores_the_preprocess_in_the_same_file(tmp_path, slice_file):
    p = Preprocess.from_model(slice_file)
    assert p == Preprocess(window="lung", size=(32, 32), classes=CLASSES)
    assert nn.load_preprocess(slice_file) == p.to_json()
    assert json.loads(_header(slice_file)[0]["__metadata__"]["preprocess"])["window"] == "lung"
    loaded = nn.load(slice_file)  # load is unchanged: the model alone
    assert isinstance(loaded, nn.Sequential)
    plain = tmp_path / "plain.safetensors"
    nn.save(slice_model(), plain)
    assert nn.load_preprocess(plain) is None and "preprocess" not in _header(plain)[0]["__metadata__"]
    with pytest.raises(ValueError, match="holds no preprocess"):
        Preprocess.from_model(plain)
    # JSON text and dicts are validated the same way
    nn.save(slice_model(), tmp_path / "d.safetensors", preprocess={"window": "brain", "size": [16, 16]})
    assert Preprocess.from_model(tmp_path / "d.safetensors").size == (16, 16)
    with pytest.raises(ValueError, match="window must be one of"):
        nn.save(slice_model(), tmp_path / "bad.safetensors", preprocess='{"window": "sunset"}')
    with pytest.raises(TypeError, match="preprocess must be a medconv.pipeline.Preprocess"):
        nn.save(slice_model(), tmp_path / "bad.safetensors", preprocess=42)
    assert not (tmp_path / "bad.safetensors").exists()


def test_the_checksum_covers_the_preprocess(tmp_path, slice_file):
    plain = tmp_path / "plain.safetensors"
    nn.save(slice_model(), plain)
    other = Preprocess(window="bone", size=(32, 32), classes=CLASSES).to_json()
    for bad in [
        _rewrite(slice_file, tmp_path / "changed.safetensors", preprocess=other),
        _rewrite(slice_file, tmp_path / "removed.safetensors", preprocess=None),
        _rewrite(plain, tmp_path / "added.safetensors", preprocess=other),
    ]:
        for fn in (nn.load, nn.load_preprocess, Predictor):
            with pytest.raises(ValueError, match="fails its checksum"):
                fn(bad)


def test_predictor_refuses_bad_model_files(tmp_path, slice_file):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Predictor(garbage)
    truncated = tmp_path / "truncated.safetensors"
    with open(slice_file, "rb") as f:
        truncated.write_bytes(f.read()[:-9])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        Predictor(truncated)
    with pytest.raises(FileNotFoundError):
        Predictor(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    nn.save(slice_model(), plain)
    with pytest.raises(ValueError, match="holds no preprocess"):
        Predictor(plain)
    three = tmp_path / "three.safetensors"
    nn.save(slice_model(out=2), three, preprocess=Preprocess(window="lung", size=(16, 16), classes=["a", "b", "c"]))
    with pytest.raises(ValueError, match="the model gives 2 probabilities but the preprocess names 3 classes"):
        Predictor(three)
    seg = tmp_path / "seg.safetensors"
    nn.save(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)), seg, preprocess=Preprocess(size=(8, 8)))
    with pytest.raises(ValueError, match=r"needs a classifier with \(N, classes\) outputs"):
        Predictor(seg)
    for kwargs, message in [(dict(batch_size=0), "batch_size must be a positive int"),
                            (dict(prefetch=-1), "prefetch must be a non-negative int"),
                            (dict(device="tpu"), r"device must be one of \('cpu', 'cuda'\)")]:
        with pytest.raises(ValueError, match=message):
            Predictor(slice_file, **kwargs)


def test_cuda_without_a_gpu_is_a_clear_error(slice_file):
    if medconv.backend_info()["gpu"]:
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match=r"device='cuda' needs a CUDA GPU and CuPy"):
        Predictor(slice_file, device="cuda")


# ------------------------------------------------------------------------ predicting


def _expected_slice(path, model, p: Preprocess):
    image = dicom.read(path, window=p.window)
    x = p.prepare_image(image.pixels, image.meta["pixel_spacing"])[None]
    return nn.predict_proba(model.eval(), x)[0]


def test_slices_of_a_tree_in_order_with_identifiers(tree, slice_file):
    root, a, b = tree
    predictor = Predictor(slice_file)
    results = predictor.predict([root])
    by_scan = [a if s.series_uid == a.series_uid else b for s in dicom.scan(root)]  # scan's series order
    assert [r["path"] for r in results] == [p for s in by_scan for p in sorted(s.paths)]  # files by name
    model = nn.load(slice_file)
    for r in results:
        assert r["error"] is None and r["problems"] == [] and r["input"] == str(root)
        ds = pydicom.dcmread(r["path"], stop_before_pixels=True)
        assert r["series_uid"] == ds.SeriesInstanceUID and r["sop_instance_uid"] == ds.SOPInstanceUID
        assert r["study_uid"] == ds.StudyInstanceUID and r["patient_id"] == ds.PatientID
        assert r["modality"] == "CT" and r["frame"] is None
        assert list(r["probability"]) == CLASSES
        assert sum(r["probability"].values()) == pytest.approx(1.0, abs=1e-6)
        expected = _expected_slice(r["path"], model, predictor.preprocess)
        np.testing.assert_allclose(list(r["probability"].values()), expected, rtol=1e-6, atol=1e-7)
        assert r["label"] == CLASSES[int(np.argmax(expected))]
    json.dumps(results)  # JSON-ready


def test_results_do_not_depend_on_prefetch_or_batch_size(tree, slice_file):
    root, a, b = tree
    paths = [b.folder, a.paths[0], root]
    reference = Predictor(slice_file, prefetch=0, batch_size=1).predict(paths)
    assert len(reference) == 4 + 1 + 7
    assert [r["input"] for r in reference] == [b.folder] * 4 + [a.paths[0]] + [str(root)] * 7
    for prefetch, batch_size in [(1, 2), (2, 16), (4, 3)]:
        assert Predictor(slice_file, prefetch=prefetch, batch_size=batch_size).predict(paths) == reference
    assert Predictor(slice_file).predict(paths, batch_size=5) == reference


def test_a_failing_input_is_reported_and_the_others_complete(tmp_path, tree, slice_file):
    root, a, b = tree
    broken = truncated_copy(tmp_path / "broken")
    notdicom = tmp_path / "notes.txt"
    notdicom.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = [a.folder, broken, tmp_path / "missing", notdicom, empty, b.paths[0]]
    results = Predictor(slice_file).predict(paths)
    assert [r["input"] for r in results] == [a.folder] * 3 + [os.fspath(p) for p in paths[1:]]
    errors = [r["error"] for r in results]
    assert errors[:3] == [None] * 3 and errors[-1] is None
    assert "(7FE0,0010) Pixel Data has 8130 bytes" in errors[3] and "truncated" in errors[3]
    assert results[3]["label"] is None and results[3]["probability"] is None
    assert results[3]["modality"] == "MR" and results[3]["path"] == broken  # what the scan found
    assert errors[4].startswith("no DICOM found: No such file or folder")
    assert errors[5].startswith("no DICOM found:") and "not a DICOM file" in errors[5]
    assert errors[6].startswith("no DICOM found:") and "empty folder" in errors[6]
    assert all(r["probability"] for r in results if r["error"] is None)


def test_volumes_with_the_readers_problems(tmp_path, tree):
    root, a, b = tree
    gap = write_series(tmp_path / "gap", n=5, seed=3)
    os.remove(gap.paths[2])  # a missing slice: read_series reports it
    path = tmp_path / "volume.safetensors"
    pre = Preprocess(window=(40, 400), spacing=(3.0, 2.0, 2.0), input="volume", classes=["a", "b", "c"])
    nn.save(volume_model(), path, preprocess=pre)
    results = Predictor(path).predict([root, gap.folder, tmp_path / "missing"])
    order = [a if s.series_uid == a.series_uid else b for s in dicom.scan(root)] + [gap]
    assert [r["series_uid"] for r in results[:3]] == [s.series_uid for s in order]
    assert [r["path"] for r in results[:3]] == [s.folder for s in order]
    assert results[0]["problems"] == [] and results[1]["problems"] == []
    assert any("missing slices" in p for p in results[2]["problems"])
    assert results[3]["error"].startswith("no DICOM found")
    model = nn.load(path)
    for r, s in zip(results[:3], order):
        vol = dicom.read_series(s.folder, strict=False, window=pre.window)
        x = pre.prepare_volume(vol.array, vol.spacing)
        assert x.shape[1:] == tuple(max(1, round(n * sp / t)) for n, sp, t in zip(vol.array.shape, vol.spacing,
                                                                                      pre.spacing))
        expected = nn.predict_proba(model.eval(), x[None])[0]
        np.testing.assert_allclose(list(r["probability"].values()), expected, rtol=1e-6, atol=1e-7)
        assert r["sop_instance_uid"] is None and r["error"] is None


def test_a_multiframe_file_gives_one_result_per_frame(tmp_path, slice_file):
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    frames = np.stack([ds.pixel_array, ds.pixel_array[::-1], ds.pixel_array[:, ::-1]]).astype(np.int16)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    path = tmp_path / "frames.dcm"
    ds.save_as(path, enforce_file_format=True)
    results = Predictor(slice_file).predict([path])
    assert [r["frame"] for r in results] == [0, 1, 2]
    assert all(r["error"] is None and r["sop_instance_uid"] == ds.SOPInstanceUID for r in results)
    assert len({tuple(r["probability"].values()) for r in results}) == 3


def test_reading_the_next_series_overlaps_inference(tree, slice_file, monkeypatch):
    """While the model runs on the first series, the second one is already being read."""
    root, a, b = tree
    units = find_inputs([a.folder, b.folder], "volume")
    path = os.path.join(os.path.dirname(slice_file), "v.safetensors")
    nn.save(volume_model(), path, preprocess=Preprocess(window="lung", size=(2, 16, 16), input="volume"))
    loading_second = threading.Event()

    def load(unit, preprocess):
        if unit.index == 1:
            loading_second.set()
        return load_unit(unit, preprocess)

    monkeypatch.setattr("medconv.pipeline.load_unit", load)
    for prefetch, overlapped in [(2, True), (0, False)]:
        loading_second.clear()
        predictor = Predictor(path, prefetch=prefetch)
        seen = []
        original = predictor.probabilities

        def probabilities(x):
            seen.append(loading_second.wait(timeout=5 if overlapped else 0.05))
            return original(x)

        predictor.probabilities = probabilities
        results = list(predictor.run(units))
        assert [r["series_uid"] for r in results] == [a.series_uid, b.series_uid]
        assert seen[0] is overlapped


def test_stopping_early_stops_the_reader(tree, slice_file):
    root, a, b = tree
    before = {t.ident for t in threading.enumerate()}
    it = Predictor(slice_file, prefetch=1, batch_size=1).predict_iter([root])
    first = next(it)
    assert first["error"] is None
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "medconv-prefetch" and t.ident not in before]


def test_progress_counts_units(tree, slice_file):
    root, a, b = tree
    counts = []
    results = list(Predictor(slice_file, batch_size=2).predict_iter([root], progress=counts.append))
    assert len(results) == 7 and sum(counts) == 7 and len(counts) > 1
