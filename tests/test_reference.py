"""The oracle checked against torch, so that the medconv tests can trust it."""

import numpy as np
import pytest

import reference as R
from conftest import (assert_close, conv_case, pad_case, pool_case, rand, torch_apply,
                      torch_avg_pool, torch_conv)

pytest.importorskip("torch")

CASES = 12


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv(torch, rng, nd):
    for _ in range(CASES):
        x, w, b, kw = conv_case(rng, nd)
        assert_close(getattr(R, f"conv{nd}d")(x, w, b, **kw), torch_conv(torch, x, w, b, **kw), what=str(kw))


def test_conv_same_asymmetric(torch, rng):
    # even kernel: total pad 3 -> 1 left, 2 right
    x, w = rand(rng, (1, 2, 7, 6)), rand(rng, (3, 2, 4, 2))
    for mode in ["zeros", "reflect", "replicate", "circular"]:
        kw = dict(padding="same", dilation=(1, 3), padding_mode=mode)
        y = R.conv2d(x, w, **kw)
        assert y.shape == (1, 3, 7, 6)
        assert_close(y, torch_conv(torch, x, w, **kw), what=mode)


def test_conv_float32_dtype(torch, rng):
    x, w, b, kw = conv_case(rng, 2, np.float32)
    y = R.conv2d(x, w, b, **kw)
    assert y.dtype == np.float32
    assert_close(y, torch_conv(torch, x, w, b, **kw))


def test_pad(torch, rng):
    for _ in range(4 * CASES):
        x, p, mode, value = pad_case(rng)
        kw = dict(value=value) if mode == "constant" else {}
        assert_close(R.pad(x, p, mode, value), torch_apply(torch, "pad", x, p, mode=mode, **kw),
                     what=f"{x.shape} {p} {mode}")


def test_pad_negative_crops(torch, rng):
    x = rand(rng, (2, 3, 5, 6))
    for p in [(-1, 2), (0, -2, 1, -1), (-2, -1, 0, 0)]:
        assert_close(R.pad(x, p), torch_apply(torch, "pad", x, p))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool(torch, rng, nd):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd)
        y, i = R.__dict__[f"max_pool{nd}d"](x, return_indices=True, **kw)
        ty, ti = torch_apply(torch, f"max_pool{nd}d", x, return_indices=True, **kw)
        assert_close(y, ty, what=str(kw))
        np.testing.assert_array_equal(i, ti, err_msg=str(kw))


def test_max_pool_ties_and_nan(torch):
    x = np.array([[[1.0, 3.0, 3.0, np.nan, 2.0, np.nan, 0.0, 5.0, 5.0, -np.inf, -np.inf]]])
    for kw in [dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=3, padding=1, stride=2),
               dict(kernel_size=4, stride=1, dilation=2), dict(kernel_size=2, stride=2, ceil_mode=True)]:
        y, i = R.max_pool1d(x, return_indices=True, **kw)
        ty, ti = torch_apply(torch, "max_pool1d", x, return_indices=True, **kw)
        assert_close(y, ty, what=str(kw))
        np.testing.assert_array_equal(i, ti, err_msg=str(kw))
    x2 = np.full((1, 1, 3, 3), -np.inf)
    x2[0, 0, 1, 2] = np.nan
    x2[0, 0, 2, 0] = np.nan
    y, i = R.max_pool2d(x2, 3, stride=1, padding=1, return_indices=True)
    ty, ti = torch_apply(torch, "max_pool2d", x2, 3, stride=1, padding=1, return_indices=True)
    assert_close(y, ty)
    np.testing.assert_array_equal(i, ti)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool(torch, rng, nd):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dilated=False)
        assert_close(R.__dict__[f"avg_pool{nd}d"](x, **kw), torch_avg_pool(torch, x, nd, **kw), what=str(kw))


def test_ceil_mode_output_size(torch):
    # 5 + 2*1 - 3 = 4, /2 -> ceil 2 (+1 = 3); last start 2*2-1 = 3 < 5 + 1 -> keep 3
    x = np.arange(5.0).reshape(1, 1, 5)
    assert R.max_pool1d(x, 3, 2, 1, ceil_mode=True).shape == (1, 1, 3)
    # 6 - 2 = 4, /3 -> ceil 2 (+1 = 3); last start 2*3 = 6 >= 6 + 0 -> drop to 2
    x = np.arange(6.0).reshape(1, 1, 6)
    assert R.max_pool1d(x, 2, 3, 0, ceil_mode=True).shape == (1, 1, 2)
    assert torch_apply(torch, "max_pool1d", x, 2, 3, 0, ceil_mode=True).shape == (1, 1, 2)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_avg_pool(torch, rng, nd):
    for _ in range(CASES):
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + tuple(int(a) for a in rng.integers(1, 9 - nd, nd))
        x = rand(rng, shape[1:] if rng.random() < 0.3 else shape)
        if rng.random() < 0.3:
            out = int(rng.integers(1, 7))
        else:
            out = tuple(None if rng.random() < 0.25 else int(rng.integers(1, 7)) for _ in range(nd))
        fn = f"adaptive_avg_pool{nd}d"
        assert_close(R.__dict__[fn](x, out), torch_apply(torch, fn, x, out), what=f"{x.shape} {out}")


def _special(rng, shape):
    x = rand(rng, shape) * 8
    x.flat[:6] = [0.0, -0.0, 50.0, -50.0, 800.0, -800.0]
    return x


@pytest.mark.parametrize("name,kw", [
    ("relu", {}), ("leaky_relu", {}), ("leaky_relu", dict(negative_slope=0.2)), ("elu", {}),
    ("elu", dict(alpha=0.5)), ("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("gelu", dict(approximate="tanh")),
])
def test_unary(torch, rng, name, kw):
    for dtype in [np.float64, np.float32]:
        x = _special(rng, (3, 4, 5)).astype(dtype)
        assert_close(getattr(R, name)(x, **kw), torch_apply(torch, name, x, **kw), dtype=dtype)


def test_relu_nan(torch):
    x = np.array([np.nan, -1.0, 1.0])
    assert_close(R.relu(x), torch_apply(torch, "relu", x))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(torch, rng, name):
    for _ in range(CASES):
        ndim = int(rng.integers(1, 5))
        x = _special(rng, tuple(int(a) for a in rng.integers(2, 5, ndim)))
        dim = int(rng.integers(-ndim, ndim))
        assert_close(getattr(R, name)(x, dim), torch_apply(torch, name, x, dim=dim), what=f"{x.shape} {dim}")


def test_maxout(torch, rng):
    for _ in range(CASES):
        pieces = int(rng.integers(1, 4))
        ndim = int(rng.integers(2, 5))
        dim = int(rng.integers(-ndim, ndim))
        shape = [int(a) for a in rng.integers(1, 4, ndim)]
        shape[dim] = pieces * int(rng.integers(1, 4))
        x = rand(rng, tuple(shape))
        t = torch.from_numpy(x)
        moved = t.movedim(dim, -1)
        expected = moved.unflatten(-1, (-1, pieces)).amax(-1).movedim(-1, dim).numpy()
        assert_close(R.maxout(x, pieces, dim), expected, what=f"{x.shape} {pieces} {dim}")


def test_linear(torch, rng):
    for shape in [(5,), (3, 5), (2, 3, 5), (0, 5)]:
        w, b = rand(rng, (4, 5)), rand(rng, (4,))
        x = rand(rng, shape)
        assert_close(R.linear(x, w, b), torch_apply(torch, "linear", x, w, b))
        assert_close(R.linear(x, w), torch_apply(torch, "linear", x, w))
