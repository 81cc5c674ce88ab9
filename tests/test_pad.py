"""pad against the numpy reference and torch: every mode, 1 to 3 padded dims, torch's pad order."""

import numpy as np
import pytest

import medconv.functional as F
import reference as R
from conftest import DTYPES, assert_close, pad_case, rand, torch_apply

CASES = 60
MODES = ["constant", "reflect", "replicate", "circular"]


def _torch_pad(torch_mod, x, p, mode, value):
    kw = dict(value=value) if mode == "constant" else {}
    return torch_apply(torch_mod, "pad", x, p, mode=mode, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_random(maybe_torch, rng, isa, mode, dtype):
    for _ in range(CASES // len(MODES) * 2):
        x, p, mode_, value = pad_case(rng, dtype, modes=(mode,))
        what = f"x{x.shape} pad={p} mode={mode} value={value}"
        kw = dict(value=value) if mode == "constant" else {}
        y = F.pad(x, p, mode, **kw)
        assert isinstance(y, np.ndarray)
        assert_close(y, R.pad(x, p, mode, value), dtype=dtype, what=what)
        if maybe_torch is not None:
            assert_close(y, _torch_pad(maybe_torch, x, p, mode, value), dtype=dtype, what=what)


@pytest.mark.parametrize("mode", MODES)
def test_exact_values(mode):
    # padding copies values: the result must be bit-exact, not just close
    x = np.arange(1.0, 6.0, dtype=np.float32).reshape(1, 1, 5)
    expected = {
        "constant": [0, 0, 1, 2, 3, 4, 5, 0],
        "reflect": [3, 2, 1, 2, 3, 4, 5, 4],
        "replicate": [1, 1, 1, 2, 3, 4, 5, 5],
        "circular": [4, 5, 1, 2, 3, 4, 5, 1],
    }[mode]
    np.testing.assert_array_equal(F.pad(x, (2, 1), mode), np.array([[expected]], dtype=np.float32))


@pytest.mark.parametrize("mode", MODES)
def test_corners_3d(maybe_torch, rng, mode):
    x = rand(rng, (2, 2, 4, 3, 5))
    p = (2, 1, 1, 2, 3, 1) if mode != "reflect" else (2, 1, 1, 2, 3, 0)
    y = F.pad(x, p, mode)
    np.testing.assert_array_equal(y, R.pad(x, p, mode))
    if maybe_torch is not None:
        np.testing.assert_array_equal(y, _torch_pad(maybe_torch, x, p, mode, 0.0))


def test_constant_value_and_default(rng):
    x = rand(rng, (2, 3, 4), np.float32)
    np.testing.assert_array_equal(F.pad(x, (1, 2), value=-7.5), R.pad(x, (1, 2), value=-7.5))
    np.testing.assert_array_equal(F.pad(x, (1, 2)), R.pad(x, (1, 2)))
    np.testing.assert_array_equal(F.pad(x, (0, 0, 0, 0)), x)


def test_constant_negative_crops(maybe_torch, rng):
    x = rand(rng, (2, 3, 5, 6))
    for p in [(-1, 2), (0, -2, 1, -1), (-2, -1, 0, 0), (-3, -3, 1, 1)]:
        y = F.pad(x, p)
        np.testing.assert_array_equal(y, R.pad(x, p), err_msg=str(p))
        if maybe_torch is not None:
            np.testing.assert_array_equal(y, _torch_pad(maybe_torch, x, p, "constant", 0.0), err_msg=str(p))


def test_larger(maybe_torch, rng, isa):
    x = rand(rng, (3, 4, 37, 41), np.float32)
    for mode in MODES:
        y = F.pad(x, (5, 3, 2, 7), mode)
        np.testing.assert_array_equal(y, R.pad(x, (5, 3, 2, 7), mode), err_msg=mode)


def test_zero_size_dims(maybe_torch):
    z = np.zeros((2, 0, 3), np.float32)
    for p in [(1, 1), (1, 1, 2, 2)]:
        y = F.pad(z, p, value=4.0)
        np.testing.assert_array_equal(y, R.pad(z, p, value=4.0))
        if maybe_torch is not None:
            np.testing.assert_array_equal(y, _torch_pad(maybe_torch, z, p, "constant", 4.0))
