"""Max, average and adaptive-average pooling against the numpy reference and torch."""

import numpy as np
import pytest

import medconv
import medconv.functional as F
import reference as R
from conftest import DTYPES, assert_close, pool_case, rand, torch_apply, torch_avg_pool

CASES = 25


def _max(maybe_torch, nd, x, kw):
    what = f"x{x.shape} {kw}"
    y, idx = getattr(F, f"max_pool{nd}d")(x, return_indices=True, **kw)
    ry, ridx = getattr(R, f"max_pool{nd}d")(x, return_indices=True, **kw)
    assert idx.dtype == np.int64
    # max pooling selects, it does not compute: values and indices are exact
    np.testing.assert_array_equal(y, ry, err_msg="reference " + what)
    np.testing.assert_array_equal(idx, ridx, err_msg="reference " + what)
    np.testing.assert_array_equal(getattr(F, f"max_pool{nd}d")(x, **kw), ry, err_msg="no indices " + what)
    if maybe_torch is not None:
        ty, tidx = torch_apply(maybe_torch, f"max_pool{nd}d", x, return_indices=True, **kw)
        np.testing.assert_array_equal(y, ty, err_msg="torch " + what)
        np.testing.assert_array_equal(idx, tidx, err_msg="torch " + what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_random(maybe_torch, rng, isa, nd, dtype):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype)
        _max(maybe_torch, nd, x, kw)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_nan_inf_and_ties(maybe_torch, rng, isa, nd):
    for _ in range(10):
        x, kw = pool_case(rng, nd, np.float32)
        x = np.round(x * 2) / 2  # many ties
        flat = x.reshape(-1)
        pick = rng.choice(flat.size, size=max(1, flat.size // 6), replace=False)
        flat[pick] = rng.choice([np.nan, np.inf, -np.inf], size=pick.size)
        _max(maybe_torch, nd, x, kw)


@pytest.mark.parametrize("nd", [2, 3])
def test_window_two_stride_two_rows(maybe_torch, rng, isa, nd):
    # the vector path that takes both taps of a width-2, stride-2 window from one pair of loads:
    # wide rows, NaN, infinities, ties and signed zeros, with indices; and the average
    shape = (2, 3) + ((4,) if nd == 3 else ()) + (6, 45)
    x = np.round(rng.standard_normal(shape) * 2).astype(np.float32) / 2
    flat = x.reshape(-1)
    pick = rng.choice(flat.size, size=flat.size // 8, replace=False)
    flat[pick] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], size=pick.size)
    for kw in (dict(kernel_size=2, stride=2), dict(kernel_size=(1, 2, 2)[3 - nd:], stride=2, padding=0),
               dict(kernel_size=2, stride=2, ceil_mode=True)):
        _max(maybe_torch, nd, x, kw)
        y = getattr(F, f"max_pool{nd}d")(x, **kw)
        ry = getattr(R, f"max_pool{nd}d")(x, **kw)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(ry.astype(np.float32)))
        finite = np.where(np.isfinite(x), x, 0).astype(np.float32)
        assert_close(getattr(F, f"avg_pool{nd}d")(finite, **kw), getattr(R, f"avg_pool{nd}d")(finite, **kw),
                     dtype=np.float32)


def _array_at(a, offset):
    """A copy of a whose data starts `offset` bytes past a 64-byte boundary."""
    raw = np.empty(a.size + 32, a.dtype)
    skip = ((64 - raw.ctypes.data % 64) % 64 + offset) // a.itemsize
    out = raw[skip:skip + a.size].reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == offset
    return out


@pytest.mark.parametrize("nd", [2, 3])
def test_whole_two_by_two_windows_are_the_portable_bits(rng, isa, nd):
    """2x2 (2x2x2) stride-2 windows inside the input (the U-Net pools) take a loop of their own on
    AVX2: values, indices and averages (divisor_override too) are the portable kernel's bits, for
    rows of exactly 8 outputs, rows whose last block overlaps, rows longer than one pass of 256
    outputs (265 and 515: a pass of one block, and one of none), odd input sizes and signed zeros;
    inputs on a cache line and 16 bytes past one."""
    for w, offset in ((16, 0), (16, 16), (17, 0), (30, 16), (45, 0), (64, 0), (64, 16), (530, 0), (1030, 16)):
        shape = (2, 3) + ((5,) if nd == 3 else ()) + (7, w)
        x = _array_at(np.round(rng.standard_normal(shape) * 2).astype(np.float32) / 2, offset)
        flat = x.reshape(-1)
        pick = rng.choice(flat.size, size=flat.size // 10, replace=False)
        flat[pick] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], size=pick.size)
        finite = np.where(np.isfinite(x), x, 0).astype(np.float32)
        maxp, avgp = getattr(F, f"max_pool{nd}d"), getattr(F, f"avg_pool{nd}d")
        runs = {}
        for which in (isa, "scalar"):
            medconv._core.select_isa(which)
            y, idx = maxp(x, 2, 2, return_indices=True)
            runs[which] = (y, idx, maxp(x, 2, 2), avgp(finite, 2, 2), avgp(finite, 2, 2, divisor_override=3))
        medconv._core.select_isa(isa)
        for got, want in zip(runs[isa], runs["scalar"]):
            np.testing.assert_array_equal(got.view(np.int32) if got.dtype == np.float32 else got,
                                          want.view(np.int32) if want.dtype == np.float32 else want,
                                          err_msg=f"{shape} [{isa}]")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_random(maybe_torch, rng, isa, nd, dtype):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype, dilated=False)
        what = f"x{x.shape} {kw}"
        y = getattr(F, f"avg_pool{nd}d")(x, **kw)
        assert_close(y, getattr(R, f"avg_pool{nd}d")(x, **kw), dtype=dtype, what="reference " + what)
        if maybe_torch is not None:
            assert_close(y, torch_avg_pool(maybe_torch, x, nd, **kw), dtype=dtype, what="torch " + what)


def test_avg_divisor_rules():
    # L=5, k=3, s=2, p=1, ceil: windows [-1,2) [1,4) [3,6) -> the last clipped to input+pad = 6
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    kw = dict(kernel_size=3, stride=2, padding=1)
    np.testing.assert_allclose(F.avg_pool1d(x, **kw), [[[3 / 3, 9 / 3, 9 / 3]]])
    np.testing.assert_allclose(F.avg_pool1d(x, **kw, count_include_pad=False), [[[3 / 2, 9 / 3, 9 / 2]]])
    np.testing.assert_allclose(F.avg_pool1d(x, **kw, divisor_override=2), [[[3 / 2, 9 / 2, 9 / 2]]])
    x = np.arange(1.0, 7.0).reshape(1, 1, 6)
    # ceil: windows [0,4) [3,7) -> the second holds 4,5,6 and is clipped to 6 + 0 -> divisor 3
    np.testing.assert_allclose(F.avg_pool1d(x, 4, 3, ceil_mode=True), [[[10 / 4, 15 / 3]]])


def test_avg_input_smaller_than_kernel_3d(rng, isa):
    # torch's avg_pool3d refuses this; the padded input is big enough, so medconv follows the reference
    x = rand(rng, (1, 2, 1, 3, 2))
    kw = dict(kernel_size=(2, 3, 3), stride=1, padding=(1, 1, 1))
    assert_close(F.avg_pool3d(x, **kw), R.avg_pool3d(x, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_random(maybe_torch, rng, isa, nd, dtype):
    name = f"adaptive_avg_pool{nd}d"
    for _ in range(CASES):
        spatial = tuple(int(a) for a in rng.integers(1, {1: 20, 2: 12, 3: 7}[nd], nd))
        x = rand(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + spatial, dtype)
        if rng.random() < 0.3:
            out = int(rng.integers(1, 8))
        else:
            # torch's adaptive_avg_pool1d takes no None
            out = tuple(None if nd > 1 and rng.random() < 0.25 else int(rng.integers(1, 8)) for _ in range(nd))
        what = f"x{x.shape} output_size={out}"
        y = getattr(F, name)(x, out)
        assert_close(y, getattr(R, name)(x, out), dtype=dtype, what="reference " + what)
        if maybe_torch is not None:
            assert_close(y, torch_apply(maybe_torch, name, x, out), dtype=dtype, what="torch " + what)


@pytest.mark.parametrize("shape,out", [
    ((2, 3, 300, 301), 1), ((1, 5, 40, 61, 33), 1), ((3, 2, 1000), 1), ((2, 4, 257, 130), (3, 5)),
    ((1, 2, 9, 70, 41), (2, 4, 3)),
])
def test_adaptive_large_windows_against_float64(rng, isa, shape, out):
    # float32 windows of up to 90,000 terms (a global pool) summed in float64, from float32 groups of
    # four at most: within 3e-7 of the float64 mean of |x|, offsets far from zero included
    nd = len(shape) - 2
    for offset in (0.0, 1000.0, -3.5):
        x = (rng.standard_normal(shape) + offset).astype(np.float32)
        y = getattr(F, f"adaptive_avg_pool{nd}d")(x, out).astype(np.float64)
        want = getattr(R, f"adaptive_avg_pool{nd}d")(x.astype(np.float64), out)
        scale = getattr(R, f"adaptive_avg_pool{nd}d")(np.abs(x).astype(np.float64), out)
        assert y.shape == want.shape
        assert np.all(np.abs(y - want) <= 3e-7 * scale), f"{shape} -> {out}, offset {offset} [{isa}]"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", [
    ((2, 5, 64, 61), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 3, 50, 47), dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True)),
    ((1, 4, 17, 19, 18), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 3, 257), dict(kernel_size=5, stride=3, padding=2)),
])
def test_larger_shapes(maybe_torch, rng, isa, dtype, shape, kw):
    nd = len(shape) - 2
    x = rand(rng, shape, dtype)
    _max(maybe_torch, nd, x, kw)
    for extra in [{}, dict(count_include_pad=False)]:
        assert_close(getattr(F, f"avg_pool{nd}d")(x, **kw, **extra),
                     getattr(R, f"avg_pool{nd}d")(x, **kw, **extra), dtype=dtype, what=f"{kw} {extra}")
    out = tuple(max(1, s // 3) for s in shape[2:])
    if nd > 1:
        assert_close(getattr(F, f"adaptive_avg_pool{nd}d")(x, out),
                     getattr(R, f"adaptive_avg_pool{nd}d")(x, out), dtype=dtype)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched(rng, nd):
    x, kw = pool_case(rng, nd, np.float32, n=1)
    y, idx = getattr(F, f"max_pool{nd}d")(x[0], return_indices=True, **kw)
    ry, ridx = getattr(R, f"max_pool{nd}d")(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, ry[0])
    np.testing.assert_array_equal(idx, ridx[0])
    x, kw = pool_case(rng, nd, np.float32, dilated=False, n=1)
    assert_close(getattr(F, f"avg_pool{nd}d")(x[0], **kw), getattr(R, f"avg_pool{nd}d")(x, **kw)[0])


def test_stride_defaults_to_kernel(rng):
    x = rand(rng, (1, 2, 9, 8))
    np.testing.assert_array_equal(F.max_pool2d(x, 3), F.max_pool2d(x, 3, stride=3))
    np.testing.assert_array_equal(F.avg_pool2d(x, (3, 2)), F.avg_pool2d(x, (3, 2), stride=(3, 2)))


def test_max_window_wholly_in_padding(maybe_torch):
    # k=2, dilation 3, padding 1 on L=2: the only window reads positions -1 and 2, both outside
    x = np.arange(2.0).reshape(1, 1, 2)
    kw = dict(kernel_size=2, dilation=3, padding=1, return_indices=True)
    y, idx = F.max_pool1d(x, **kw)
    ry, ridx = R.max_pool1d(x, **kw)
    np.testing.assert_array_equal(y, ry)  # -inf, as torch
    if maybe_torch is not None:
        ty, tidx = torch_apply(maybe_torch, "max_pool1d", x, **kw)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_array_equal(idx, tidx)
