"""conv1d / conv2d / conv3d against the numpy reference and torch, random shapes and arguments."""

import numpy as np
import pytest

import medconv.functional as F
import reference as R
from conftest import DTYPES, assert_close, conv_case, rand, same_bits_at_thread_counts, torch_conv

CASES = 25


def _check(torch_mod, nd, x, w, b, kw, **extra):
    y = getattr(F, f"conv{nd}d")(x, w, b, **kw, **extra)
    what = f"x{x.shape} w{w.shape} bias={b is not None} {kw}"
    assert isinstance(y, np.ndarray)
    assert_close(y, getattr(R, f"conv{nd}d")(x, w, b, **kw), dtype=x.dtype, what="reference " + what)
    if torch_mod is not None:
        assert_close(y, torch_conv(torch_mod, x, w, b, **kw), dtype=x.dtype, what="torch " + what)
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_random(maybe_torch, rng, isa, nd, dtype):
    for _ in range(CASES):
        x, w, b, kw = conv_case(rng, nd, dtype)
        _check(maybe_torch, nd, x, w, b, kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,wshape,kw", [
    # shapes big enough for the vectorised paths: many channels, wide rows, odd tails
    ((2, 16, 21, 19), (24, 16, 3, 3), dict(padding=1)),
    ((1, 8, 33, 17), (8, 1, 3, 3), dict(padding="same", groups=8)),           # depthwise
    ((2, 32, 9, 10), (40, 32, 1, 1), {}),                                      # pointwise
    ((1, 6, 23, 18), (12, 3, 5, 4), dict(stride=(2, 3), padding=(2, 1), dilation=(1, 2), groups=2)),
    ((1, 4, 7, 9, 11), (8, 4, 3, 3, 3), dict(padding=1)),
    ((1, 4, 8, 8, 8), (6, 2, 3, 1, 2), dict(stride=2, padding=(1, 0, 1), groups=2)),
    ((2, 5, 67), (7, 5, 7), dict(padding=3, padding_mode="reflect")),
    ((1, 3, 10, 10), (5, 3, 4, 4), dict(padding="same", padding_mode="circular")),
    ((1, 3, 6, 7, 5), (2, 3, 2, 3, 2), dict(padding="same", padding_mode="replicate", dilation=2)),
])
def test_larger_shapes(maybe_torch, rng, isa, dtype, shape, wshape, kw):
    x, w, b = rand(rng, shape, dtype), rand(rng, wshape, dtype), rand(rng, wshape[:1], dtype)
    _check(maybe_torch, len(shape) - 2, x, w, b, kw)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched(maybe_torch, rng, nd):
    x, w, b, kw = conv_case(rng, nd, np.float32, n=1)
    y = getattr(F, f"conv{nd}d")(x[0], w, b, **kw)
    assert_close(y, getattr(R, f"conv{nd}d")(x, w, b, **kw)[0], dtype=np.float32)


def test_same_even_kernel_pads_right(rng):
    # kernel 2: total padding 1 goes on the right (torch semantics)
    x = np.arange(5.0).reshape(1, 1, 5)
    w = np.array([[[1.0, 10.0]]])
    y = F.conv1d(x, w, padding="same")
    np.testing.assert_array_equal(y, [[[10.0, 21.0, 32.0, 43.0, 4.0]]])


def test_valid_equals_zero_padding(rng):
    x, w = rand(rng, (2, 3, 9, 8)), rand(rng, (4, 3, 3, 2))
    np.testing.assert_array_equal(F.conv2d(x, w, padding="valid"), F.conv2d(x, w, padding=0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_relu_and_out(rng, dtype):
    x, w, b, kw = conv_case(rng, 2, dtype)
    expected = R.relu(R.conv2d(x, w, b, **kw))
    assert_close(F.conv2d(x, w, b, **kw, activation="relu"), expected, dtype=dtype)
    out = np.full(expected.shape, np.nan, dtype=dtype)
    r = F.conv2d(x, w, b, **kw, activation="relu", out=out)
    assert r is out
    assert_close(out, expected, dtype=dtype)


def test_tuple_padding_per_dim(maybe_torch, rng):
    x, w = rand(rng, (1, 2, 5, 6, 7)), rand(rng, (3, 2, 2, 3, 3))
    for kw in [dict(padding=(0, 1, 2)), dict(padding=(2, 0, 1), stride=(1, 2, 3), dilation=(2, 1, 1))]:
        _check(maybe_torch, 3, x, w, None, kw)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=(0, 2), dilation=(2, 1)), dict(groups=3)])
def test_float64_on_the_dgemm(maybe_torch, rng, isa, kw):
    """float64 convs with enough channels run the implicit GEMM on AVX2's 6x8 DGEMM: 360-tap sums (two
    K passes of at most 256), 29 output channels (a partial 6-row tile), 13x17 outputs (partial
    8-column panels), fused ReLU, and the same bits at 1-3 threads."""
    x = rand(rng, (2, 120 if kw.get("groups") else 40, 13, 17), np.float64)
    w = rand(rng, (30 if kw.get("groups") else 29, 40, 3, 3), np.float64)
    b = rand(rng, w.shape[:1], np.float64)
    y = _check(maybe_torch, 2, x, w, b, kw)
    relu = F.conv2d(x, w, b, activation="relu", **kw)
    np.testing.assert_array_equal(relu, np.maximum(y, 0))
    np.testing.assert_array_equal(same_bits_at_thread_counts(lambda: F.conv2d(x, w, b, **kw), (1, 3)), y)
