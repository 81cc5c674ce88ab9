"""relu .. gelu, softmax, log_softmax, maxout and linear against the numpy reference and torch."""

import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
import reference as R
from conftest import DTYPES, assert_close, rand, torch_apply

UNARY = [
    ("relu", {}), ("leaky_relu", {}), ("leaky_relu", dict(negative_slope=0.3)), ("leaky_relu", dict(negative_slope=-1.5)),
    ("elu", {}), ("elu", dict(alpha=0.4)), ("sigmoid", {}), ("tanh", {}),
    ("gelu", {}), ("gelu", dict(approximate="none")), ("gelu", dict(approximate="tanh")),
]
UNARY_IDS = [f"{n}-{'-'.join(map(str, k.values()))}" for n, k in UNARY]
SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0, 10.0, -10.0, 20.0, -20.0, 45.0, -45.0,
           88.0, -88.0, 100.0, -100.0, 800.0, -800.0, 1e30, -1e30, np.inf, -np.inf]


def _inputs(rng, dtype):
    # lengths around SIMD widths (tails)
    for n in [7, 8, 9, 16, 31, 33, 100, 1027]:
        yield (rand(rng, (n,), dtype) * 12).astype(dtype)
    yield rand(rng, (2, 3, 5, 7), dtype) * 4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", UNARY, ids=UNARY_IDS)
def test_unary(maybe_torch, rng, isa, name, kw, dtype):
    for x in _inputs(rng, dtype):
        y = getattr(F, name)(x, **kw)
        what = f"{name} {kw} x{x.shape}"
        assert_close(y, getattr(R, name)(x, **kw), dtype=dtype, what="reference " + what)
        if maybe_torch is not None:
            assert_close(y, torch_apply(maybe_torch, name, x, **kw), dtype=dtype, what="torch " + what)


@pytest.mark.parametrize("name,kw", UNARY, ids=UNARY_IDS)
def test_unary_streamed(rng, isa, name, kw):
    # 8 MiB and more are written with streaming stores when out-of-place and aligned; in place,
    # into a misaligned out= and on 1 or 3 threads the bits are the same
    x = (rand(rng, ((1 << 21) + 13,), np.float32) * 6).astype(np.float32)
    y = getattr(F, name)(x, **kw)
    assert_close(y, getattr(R, name)(x, **kw), dtype=np.float32)
    out = np.empty(x.size + 1, np.float32)[1:]
    before = mc.get_num_threads()
    try:
        for threads in (1, 3):
            mc.set_num_threads(threads)
            getattr(F, name)(x, **kw, out=out)
            np.testing.assert_array_equal(out, y)
    finally:
        mc.set_num_threads(before)
    inplace = x.copy()
    getattr(F, name)(inplace, **kw, out=inplace)
    np.testing.assert_array_equal(inplace, y)


@pytest.mark.skipif(not {"avx2", "avx512"} <= set(mc.backend_info()["supported_isas"]),
                    reason="needs a CPU with AVX-512")
@pytest.mark.parametrize("name,kw", UNARY, ids=UNARY_IDS)
def test_avx512_activations_give_avx2s_bits(rng, name, kw):
    # vecmath.h runs the same operations per lane at 8 and 16 lanes; every tail and alignment
    x = np.concatenate([(rand(rng, (100003,), np.float32) * 6), np.array(SPECIAL, np.float32)])
    results = []
    before = mc.backend_info()["isa"]
    try:
        for isa in ("avx2", "avx512"):
            mc._core.select_isa(isa)
            results.append([getattr(F, name)(x[off:], **kw) for off in range(0, 17)])
    finally:
        mc._core.select_isa(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", UNARY, ids=UNARY_IDS)
def test_unary_special_values(maybe_torch, isa, name, kw, dtype):
    # overflow-prone and infinite inputs, each judged on its own: relative for big results,
    # absolute (tol) for small ones, since float32 formulas lose the far tails (as torch's do)
    x = np.array(SPECIAL * 2, dtype=dtype)[:33]  # 33: one full vector and a tail
    y = getattr(F, name)(x, **kw)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, getattr(R, name)(x, **kw), rtol=tol, atol=tol, equal_nan=True,
                               err_msg=f"reference {name} {kw}")
    if maybe_torch is not None:  # on the finite inputs: torch's AVX-512 gelu gives NaN for +-inf
        finite = np.isfinite(x)
        np.testing.assert_allclose(y[finite], torch_apply(maybe_torch, name, x, **kw)[finite], rtol=tol, atol=tol,
                                   equal_nan=True, err_msg=f"torch {name} {kw}")


@pytest.mark.parametrize("name,kw", UNARY, ids=UNARY_IDS)
def test_unary_nan(isa, name, kw):
    x = np.array([np.nan, 1.0, -1.0, np.nan, 0.0, 2.0, np.nan, -2.0, 5.0], dtype=np.float32)
    y = getattr(F, name)(x, **kw)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


def test_relu_exact(rng):
    x = rand(rng, (4, 37), np.float32)
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(maybe_torch, rng, isa, name, dtype):
    for _ in range(30):
        ndim = int(rng.integers(1, 5))
        x = rand(rng, tuple(int(a) for a in rng.integers(1, 7, ndim)), dtype) * float(rng.choice([1, 10, 100]))
        dim = int(rng.integers(-ndim, ndim))
        what = f"{name} x{x.shape} dim={dim}"
        y = getattr(F, name)(x, dim)
        assert_close(y, getattr(R, name)(x, dim), dtype=dtype, what="reference " + what)
        if maybe_torch is not None:
            assert_close(y, torch_apply(maybe_torch, name, x, dim=dim), dtype=dtype, what="torch " + what)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_and_long(rng, isa, name):
    # huge logits must not overflow; long rows go through the vector loops
    for x in [np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1e4, -999.0]], dtype=np.float32),
              rand(rng, (3, 1000), np.float32) * 50, rand(rng, (2, 513, 3))]:
        for dim in range(x.ndim):
            y = getattr(F, name)(x, dim=dim)
            assert np.isfinite(y).all()
            assert_close(y, getattr(R, name)(x, dim), dtype=x.dtype, what=f"{x.shape} dim={dim}")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(2100, 1000), (1100, 2001)])
def test_softmax_streamed_rows(rng, isa, name, shape):
    # outputs of 8 MiB and more are written with streaming stores: aligned and odd rows, a caller's
    # out= that is not 32-byte aligned, one thread and several
    x = rand(rng, shape, np.float32) * 20
    expected = getattr(R, name)(x, 1)
    assert_close(getattr(F, name)(x, 1), expected, dtype=np.float32)
    out = np.empty(x.size + 1, np.float32)[1:].reshape(shape)
    before = mc.get_num_threads()
    try:
        for threads in (1, 3):
            mc.set_num_threads(threads)
            getattr(F, name)(x, 1, out=out)
            assert_close(out, expected, dtype=np.float32, what=f"{threads} threads")
    finally:
        mc.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout(maybe_torch, rng, isa, dtype):
    for _ in range(30):
        pieces = int(rng.integers(1, 5))
        ndim = int(rng.integers(1, 5))
        dim = int(rng.integers(-ndim, ndim))
        shape = [int(a) for a in rng.integers(1, 6, ndim)]
        shape[dim] = pieces * int(rng.integers(1, 5))
        x = rand(rng, tuple(shape), dtype)
        kw = {} if dim == 1 and rng.random() < 0.5 else dict(dim=dim)
        y = F.maxout(x, pieces, **kw)
        np.testing.assert_array_equal(y, R.maxout(x, pieces, dim), err_msg=f"x{x.shape} pieces={pieces} dim={dim}")


def test_maxout_default_dim_and_nan():
    x = np.array([[1.0, 5.0, 2.0, 3.0, np.nan, 0.0]], dtype=np.float32)  # C=6, pieces=2 -> 3
    y = F.maxout(x, 2)
    assert y.shape == (1, 3)
    np.testing.assert_array_equal(y, [[5.0, 3.0, np.nan]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(maybe_torch, rng, isa, dtype):
    for xshape, (out_f, in_f) in [((5,), (4, 5)), ((3, 5), (4, 5)), ((2, 3, 17), (9, 17)), ((1, 1), (1, 1)),
                                  ((33, 64), (65, 64)), ((2, 2, 2, 3), (8, 3)), ((7, 130), (3, 130))]:
        x, w, b = rand(rng, xshape, dtype), rand(rng, (out_f, in_f), dtype), rand(rng, (out_f,), dtype)
        for bias in [b, None]:
            y = F.linear(x, w, bias)
            what = f"x{xshape} w{w.shape} bias={bias is not None}"
            assert_close(y, R.linear(x, w, bias), dtype=dtype, what="reference " + what)
            if maybe_torch is not None:
                assert_close(y, torch_apply(maybe_torch, "linear", x, w, bias), dtype=dtype, what="torch " + what)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_infinities_and_single(maybe_torch, name):
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf], [np.inf, 0.0], [3.0, 3.0]])
    y = getattr(F, name)(x, 1)
    if maybe_torch is not None:
        assert_close(y, torch_apply(maybe_torch, name, x, dim=1))  # nan where torch has nan
    assert_close(y[1:2], getattr(R, name)(x[1:2], 1))
    ones = getattr(F, name)(np.ones((3, 1), np.float32), 1)  # a dim of size 1
    assert_close(ones, np.full((3, 1), 1.0 if name == "softmax" else 0.0, np.float32))


def test_linear_no_in_features():
    y = F.linear(np.ones((2, 0)), np.ones((3, 0)), np.arange(3.0))
    np.testing.assert_array_equal(y, [[0.0, 1.0, 2.0]] * 2)
    np.testing.assert_array_equal(F.linear(np.ones((2, 0)), np.ones((3, 0))), np.zeros((2, 3)))
