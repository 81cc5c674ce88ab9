"""save / load round trips (architecture + weights + buffers), and refusing bad files."""

import json
import struct

import numpy as np
import pytest

import medconv.nn as nn
from conftest import assert_close, rand


def _model():
    nn.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect"), nn.GELU("tanh"))),
        nn.SkipConcat(nn.Sequential(nn.MaxPool2d(2), nn.ConvTranspose2d(4, 2, 2, stride=2))),
        nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(24, 5), nn.LogSoftmax(dim=1),
    )


def test_round_trip(tmp_path, rng):
    m = _model()
    x = rand(rng, (3, 1, 8, 8), np.float32)
    m(x)  # moves the BatchNorm running statistics
    m.eval()
    path = tmp_path / "model.safetensors"
    nn.save(m, path)
    loaded = nn.load(path)
    assert repr(loaded) == repr(m)
    assert loaded.training  # a fresh model, as torch's
    loaded.eval()
    assert np.array_equal(loaded(x), m(x))
    for k, v in m.state_dict().items():
        assert np.array_equal(loaded.state_dict()[k], v) and loaded.state_dict()[k].dtype == v.dtype


def test_round_trip_float64_and_plain_layers(tmp_path, rng):
    m = nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, bias=False), nn.ELU(0.5), nn.AvgPool1d(2, ceil_mode=True),
                      nn.Flatten(), nn.Linear(9, 2)).double()
    nn.save(m, str(tmp_path / "m.safetensors"))
    loaded = nn.load(str(tmp_path / "m.safetensors"))
    assert loaded.dtype == np.float64
    x = rand(rng, (2, 2, 13), np.float64)
    assert_close(loaded(x), m(x))


def _write(path, header: dict, data: bytes):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _read(path):
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def test_bad_files_are_refused(tmp_path):
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    good = tmp_path / "good.safetensors"
    nn.save(m, good)
    blob = good.read_bytes()

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(blob[:-5])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        nn.load(truncated)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        nn.load(garbage)

    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0x40]))
    with pytest.raises(ValueError, match="fails its checksum"):
        nn.load(flipped)

    header, data = _read(good)
    meta = header["__metadata__"]
    for change, message in [
        (dict(architecture='{"class": "os.system", "args": {}}'), "unknown class 'os.system'"),
        (dict(architecture='{"class": "Linear", "args": {"in_features": 3}}'), "cannot rebuild Linear"),
        (dict(architecture='{"class": "Sequential", "children": [["0", {"class": "Linear", "args": '
                            '{"in_features": 4, "out_features": 2}}]]}'), "size mismatch|do not match"),
        (dict(architecture="[" * 100000), "unreadable architecture|nested too deeply"),
        (dict(architecture="{not json"), "unreadable architecture"),
        (dict(format="other"), "not written by medconv.nn.save"),
        (dict(format_version="99"), "format version '99'"),
    ]:
        bad = tmp_path / "bad.safetensors"
        _write(bad, {**header, "__metadata__": {**meta, **change}}, data)
        with pytest.raises(ValueError, match=message):
            nn.load(bad)

    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "missing.safetensors")


def test_custom_classes_need_register(tmp_path, rng):
    class Scale(nn.Module):
        def __init__(self, factor=2.0):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    m = nn.Sequential(nn.Linear(2, 2), Scale(3.0))
    with pytest.raises(ValueError, match=r"call medconv.nn.register\(Scale\)"):
        nn.save(m, tmp_path / "s.safetensors")
    nn.register(Scale)
    nn.save(m, tmp_path / "s.safetensors")
    loaded = nn.load(tmp_path / "s.safetensors")
    assert loaded[1].factor == 3.0
    x = rand(rng, (2, 2), np.float32)
    assert np.array_equal(loaded(x), m(x))
