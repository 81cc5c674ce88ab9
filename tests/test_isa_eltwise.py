"""Every kernel variant of the memory-bound family (activations, softmax, maxout, pooling) against
the scalar ISA and a float64 evaluation: random shapes with tails (sizes not multiples of 8),
NaN / inf / huge values, 1..3 threads.

relu, leaky_relu, maxout and max_pool (values and indices) must be bitwise the scalar kernels';
avg_pool too (same summation order, same division). The transcendental functions of the SIMD
variants are polynomial approximations held to a relative error vs float64 of 4e-7 (sigmoid,
tanh, elu, gelu) and 1e-6 (softmax), with the reference's NaN / inf behaviour.
"""

import numpy as np
import pytest
import scipy.special as sps

import medconv
import medconv.functional as F
import reference

from conftest import rand

ISAS = list(medconv.backend_info()["supported_isas"])
VECTOR_ISAS = [i for i in ISAS if i != "scalar"]
TINY32 = float(np.finfo(np.float32).tiny)
SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38, -3e38, 1e30, -1e30, 1e-40, -1e-40,
                     88.0, -88.0, 89.0, -89.0, 104.0, -104.0, 20.0, -20.0, 9.0, -9.0, 1e-20, -1e-20], np.float32)
TRANSCENDENTAL = ["sigmoid", "tanh", "elu", "gelu", "gelu_tanh"]


@pytest.fixture(params=ISAS)
def each_isa(request):
    """Runs the test once per kernel variant this CPU can run; "auto" afterwards."""
    medconv._core.select_isa(request.param)
    try:
        yield request.param
    finally:
        medconv._core.select_isa("auto")


@pytest.fixture(params=[1, 2, 3])
def threads(request):
    before = medconv.get_num_threads()
    medconv.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        medconv.set_num_threads(before)


def on_isa(isa, fn):
    """fn() with the given ISA active, then the previous one again."""
    before = medconv.backend_info()["isa"]
    medconv._core.select_isa(isa)
    try:
        return fn()
    finally:
        medconv._core.select_isa(before)


def bits_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def with_specials(rng, shape, dtype=np.float32, scale=4.0, frac=0.05):
    """Normal * scale, a fraction of entries replaced by NaN, +-inf, +-0, huge, subnormal values."""
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    flat = x.reshape(-1)
    k = int(flat.size * frac)
    if k:
        flat[rng.integers(0, flat.size, k)] = rng.choice(SPECIALS, k).astype(dtype)
    return x


def random_shape(rng, max_size=3000):
    """1 to 4 dims, total size usually not a multiple of 8."""
    nd = int(rng.integers(1, 5))
    shape = [int(rng.integers(1, 12)) for _ in range(nd)]
    shape[-1] = int(rng.integers(1, max(2, max_size // max(1, int(np.prod(shape[:-1]))))))
    return tuple(shape)


# ------------------------------------------------------------------------ float64 truth


def _unary64(op, x, alpha):
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if op == "sigmoid":
            return sps.expit(x)
        if op == "tanh":
            return np.tanh(x)
        if op == "elu":
            return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
        if op == "gelu":
            return x * 0.5 * sps.erfc(-x / np.sqrt(2.0))
        if op == "gelu_tanh":
            return x * sps.expit(2.0 * np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3))
    raise ValueError(op)


def _call(op, x, alpha=1.0, out=None):
    if op == "elu":
        return F.elu(x, alpha, out=out)
    if op == "gelu_tanh":
        return F.gelu(x, approximate="tanh", out=out)
    if op == "leaky_relu":
        return F.leaky_relu(x, alpha, out=out)
    return getattr(F, op)(x, out=out)


def _tolerance(op, isa, x):
    """Allowed |y - y64| per element: relative for the SIMD variants, plus the reference's own
    cancellation error (0.5 x (1 + erf), 0.5 x (1 + tanh)) for the scalar one; gelu_tanh's input
    to exp is itself rounded, so its bound grows with that argument."""
    x = np.abs(x.astype(np.float64))
    rel = np.full(x.shape, 4e-7)
    if op == "gelu_tanh":
        with np.errstate(over="ignore"):
            rel = 4e-7 * (1.0 + 3.2 * x * (1.0 + 0.045 * x * x))
    extra = np.zeros(x.shape)
    if isa == "scalar" and op in ("gelu", "gelu_tanh"):
        extra = 1.2e-7 * x
    return rel, extra + TINY32


def _check_transcendental(op, isa, x, y, alpha=1.0):
    y64 = _unary64(op, x, alpha)
    y = y.astype(np.float64)
    nan = np.isnan(y64)
    np.testing.assert_array_equal(np.isnan(y), nan, err_msg=f"{op} [{isa}]: NaN positions")
    inf = np.isinf(y64)
    np.testing.assert_array_equal(y[inf], y64[inf], err_msg=f"{op} [{isa}]: infinities")
    ok = ~(nan | inf)
    rel, atol = _tolerance(op, isa, x)
    err = np.abs(y[ok] - y64[ok])
    bound = rel[ok] * np.abs(y64[ok]) + atol[ok]
    worst = int(np.argmax(err / bound)) if err.size else 0
    assert np.all(err <= bound), (
        f"{op} [{isa}]: x={x[ok][worst]!r} y={y[ok][worst]!r} want {y64[ok][worst]!r} "
        f"(relative error {err[worst] / max(abs(y64[ok][worst]), TINY32):.3g})"
    )


# ------------------------------------------------------------------------ activations


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["relu", "leaky_relu"])
def test_relu_family_bitwise(each_isa, threads, rng, op, dtype):
    for _ in range(4):
        x = with_specials(rng, random_shape(rng), dtype)
        alpha = float(rng.choice([0.01, 0.2, -0.5]))
        y = _call(op, x, alpha)
        want = on_isa("scalar", lambda: _call(op, x, alpha))
        assert bits_equal(y, want), f"{op} [{each_isa}] differs from the scalar kernel on {x.shape}"
        # the kernel multiplies by alpha in the input's dtype: the product of two float32 is exact in float64
        ref = reference.relu(x) if op == "relu" else reference.leaky_relu(x, float(dtype(alpha)))
        np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("op", TRANSCENDENTAL)
def test_transcendental_vs_float64(each_isa, threads, rng, op):
    for _ in range(3):
        x = with_specials(rng, random_shape(rng, 5000), scale=float(rng.choice([0.5, 3.0, 12.0])))
        alpha = float(rng.choice([1.0, 0.3, 2.5]))
        y = _call(op, x, alpha)
        assert y.dtype == np.float32 and y.shape == x.shape
        _check_transcendental(op, each_isa, x, y, alpha)
        y_scalar = on_isa("scalar", lambda: _call(op, x, alpha))
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_scalar))


@pytest.mark.parametrize("op", TRANSCENDENTAL)
def test_transcendental_sweep(each_isa, op):
    """A dense sweep of the ranges where each approximation switches branch or saturates."""
    x = np.concatenate([
        np.linspace(-110.0, 110.0, 200_003, dtype=np.float32),
        np.linspace(-1.5, 1.5, 100_001, dtype=np.float32),
        np.geomspace(1e-38, 1.0, 20_001).astype(np.float32),
        -np.geomspace(1e-38, 1.0, 20_001).astype(np.float32),
        SPECIALS,
    ])
    _check_transcendental(op, each_isa, x, _call(op, x))


@pytest.mark.parametrize("op", ["relu", "sigmoid", "tanh", "elu", "gelu", "gelu_tanh"])
def test_special_values(each_isa, op):
    x = SPECIALS.copy()
    y = _call(op, x)
    want = on_isa("scalar", lambda: _call(op, x))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want), err_msg=f"{op} NaN positions")
    if op == "relu":
        assert bits_equal(y, want)
    else:  # the scalar gelus lose the tiny results of large negative x (1 + erf cancels): vs float64
        _check_transcendental(op, each_isa, x, y)
    with np.errstate(invalid="ignore"):
        if op == "relu":
            assert np.isnan(y[0]) and y[2] == np.inf and y[3] == 0.0
        if op == "sigmoid":
            assert (y[2], y[3]) == (1.0, 0.0) and y[6] == 1.0 and y[7] == 0.0
        if op == "tanh":
            assert (y[2], y[3]) == (1.0, -1.0) and (y[6], y[7]) == (1.0, -1.0)
            assert np.signbit(y[5]) and not np.signbit(y[4])
        if op == "elu":
            assert y[3] == -1.0 and y[7] == -1.0 and y[6] == np.float32(3e38)
        if op == "gelu":
            assert y[2] == np.inf and np.isnan(y[3]) and y[6] == np.float32(3e38) and y[7] == 0.0


def test_elu_alpha_and_inplace(each_isa, rng):
    x = with_specials(rng, (3, 1001))
    for alpha in (0.0, 0.5, 3.0):
        y = F.elu(x, alpha)
        _check_transcendental("elu", each_isa, x, y, alpha)
    z = x.copy()
    F.elu(z, 1.0, inplace=True)
    assert bits_equal(z, F.elu(x, 1.0))


@pytest.mark.parametrize("op", ["relu", "leaky_relu"] + TRANSCENDENTAL)
def test_unary_thread_split_invariance(each_isa, rng, op):
    """Same bits for 1, 2 and 3 threads, whatever element falls at a chunk edge or in the tail."""
    x = with_specials(rng, (3 * 16384 * 8 + 5,))
    before = medconv.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            medconv.set_num_threads(n)
            outs.append(_call(op, x, 0.2))
    finally:
        medconv.set_num_threads(before)
    assert bits_equal(outs[0], outs[1]) and bits_equal(outs[0], outs[2])
    # an element's bits do not depend on where the array starts or ends either
    assert bits_equal(_call(op, x[3:1000], 0.2), outs[0][3:1000])


# ------------------------------------------------------------------------ softmax


def _softmax64(x, dim, log):
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=dim, keepdims=True)
        m = np.where(np.isneginf(m), 0.0, m)
        e = np.exp(x - m)
        s = np.sum(e, axis=dim, keepdims=True)
        return x - m - np.log(s) if log else e / s


@pytest.mark.parametrize("log", [False, True])
def test_softmax_vs_float64(each_isa, threads, rng, log):
    shapes = [((4096 // 64, 1000), 1), ((3, 37, 50), 1), ((2, 300, 9), 1), ((5, 7, 3), 1), ((64, 10), 1),
              ((2, 1000, 70), 1), ((7, 13), 0), ((1, 1), 1), ((3, 4, 5, 6), 2), ((2, 3, 129), -1)]
    for shape, dim in shapes:
        x = (rng.standard_normal(shape) * float(rng.choice([1.0, 5.0, 20.0]))).astype(np.float32)
        y = (F.log_softmax if log else F.softmax)(x, dim)
        want = _softmax64(x, dim, log)
        err = np.abs(y.astype(np.float64) - want)
        if log:
            bound = (1e-6 if each_isa != "scalar" else 1e-5) * np.maximum(1.0, np.abs(want))
        else:
            bound = (1e-6 if each_isa != "scalar" else 2e-5) * want + TINY32
        assert np.all(err <= bound), f"{shape} dim={dim} [{each_isa}] worst {np.max(err / bound):.3g} x bound"


def _softmax_bound(want, x, isa, log):
    """The SIMD kernels: softmax within 2.5e-7 of float64 down to the smallest normal results,
    log-softmax within 2.5e-7 max(1, |y|); the portable kernel rounds x - max in float32 (up to an ulp
    of x more)."""
    if not log:
        return (2.5e-7 if isa != "scalar" else 2e-5) * want + TINY32
    bound = (2.5e-7 if isa != "scalar" else 1e-5) * np.maximum(1.0, np.abs(want))
    return bound + 2 * np.spacing(np.abs(x)).astype(np.float64) if isa == "scalar" else bound


@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows_either_side_of_the_scaled_exp(each_isa, rng, log):
    # rows whose |max| <= 1000 take exp(x) 2^-k, the others exp(x - max): softmax within 2.5e-7
    # of float64 down to the smallest normal results, log-softmax within 2.5e-7 max(1, |y|)
    for offset in (0.0, 999.0, -999.5, 1000.5, -1001.0, 5e4):
        x = (rng.standard_normal((16, 1003)) * 20 + offset).astype(np.float32)
        x[3, 7] = -np.inf
        x[5, :] = np.float32(offset) - np.linspace(0, 120, 1003, dtype=np.float32)  # into underflow
        y = (F.log_softmax if log else F.softmax)(x, 1).astype(np.float64)
        want = _softmax64(x, 1, log)
        bound = _softmax_bound(want, x, each_isa, log)
        finite = np.isfinite(want)
        assert np.all(np.abs(y[finite] - want[finite]) <= bound[finite]), f"offset {offset} [{each_isa}]"
        assert y[3, 7] == (-np.inf if log else 0.0)
    lone = (F.log_softmax if log else F.softmax)(np.array([[2.5], [-700.0]], np.float32), 1)
    np.testing.assert_array_equal(lone, np.full((2, 1), 0.0 if log else 1.0))


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("layout", ["columns", "short rows"])
def test_softmax_columns_and_short_rows_either_side_of_the_scaled_exp(each_isa, rng, log, layout):
    # channel softmax (dim 1 of NCHW) runs down columns, rows under 16 long as transposed columns:
    # each column's max picks exp(x) 2^-k or exp(x - max), columns of both kinds side by side in
    # one vector; the same bounds as the rows
    for dim in (1, 2, 3, 5, 15):
        x = (rng.standard_normal((dim, 203)) * 20).astype(np.float32)
        x += rng.choice(np.float32([0.0, 999.0, -999.5, 1000.5, -1001.0, 5e4]), size=203)
        x[:, 7] = -np.inf
        x[0, 9] = -np.inf
        if dim > 1:
            x[:, 11] = np.float32(3.0) - np.linspace(0, 120, dim, dtype=np.float32)  # into underflow
        if layout == "columns":
            xin, axis = x.reshape(1, dim, 203), 1
        else:
            xin, axis = np.ascontiguousarray(x.T), 1
        y = (F.log_softmax if log else F.softmax)(xin, axis).astype(np.float64)
        want = _softmax64(xin, axis, log)
        bound = _softmax_bound(want, xin, each_isa, log)
        finite = np.isfinite(want)
        assert np.all(np.abs(y[finite] - want[finite]) <= bound[finite]), f"dim {dim} {layout} [{each_isa}]"
        col7 = y[0, :, 7] if layout == "columns" else y[7]
        assert np.isnan(col7).all()  # an all -inf softmax: 0 / 0, as the reference
        if dim > 1:
            lone = y[0, 0, 9] if layout == "columns" else y[9, 0]
            assert lone == (-np.inf if log else 0.0)
        if dim == 1:
            np.testing.assert_array_equal(y[finite], 0.0 if log else 1.0)


def test_log_softmax_of_huge_logits(each_isa, rng):
    # beyond |max| ~1e7, max + log(sum) in float64 would drop log(sum): y = ((x - max) - b) - c with
    # b + c = log(sum) instead (log_softmax of twenty 3.4e38s gave 0, not -log 20); rows, short rows
    # and columns
    tol = 2.5e-7 if each_isa != "scalar" else 1e-5
    for offset in (1e7, -3e9, 1e30, 3.3e38):
        x = (rng.standard_normal((40, 37)) * 5 + offset).astype(np.float32)
        for xin, dim in ((x, 1), (np.ascontiguousarray(x[:, :9]), 1), (np.ascontiguousarray(x.T), 0)):
            want = _softmax64(xin, dim, True)
            y = F.log_softmax(xin, dim).astype(np.float64)
            assert np.all(np.abs(y - want) <= tol * np.maximum(1.0, np.abs(want))), f"{offset} {xin.shape} [{each_isa}]"
    y = F.log_softmax(np.full((1, 20), 3.4e38, np.float32), 1)
    np.testing.assert_allclose(y, np.full((1, 20), -np.log(20.0)), rtol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_special_values(each_isa, log):
    f = F.log_softmax if log else F.softmax
    inf, nan = np.inf, np.nan
    rows = np.array([[1.0, 2.0, nan, 0.5] + [0.0] * 9,
                     [-inf] * 13,
                     [inf, 1.0] + [0.0] * 11,
                     [-inf, 3.0, -inf, 1.0] + [-1e30] * 9,
                     [3e38, -3e38] + [0.0] * 11], dtype=np.float32)
    for x, dim in ((rows, 1), (np.ascontiguousarray(rows.T), 0)):
        y = f(x, dim)
        want = on_isa("scalar", lambda: f(x, dim))
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-30, equal_nan=True)
        r = y if dim == 1 else y.T
        assert np.isnan(r[0]).all() and np.isnan(r[1]).all() and np.isnan(r[2]).all()
        if not log:
            assert r[3, 0] == 0.0 and r[3, 2] == 0.0 and abs(r[3].sum() - 1.0) < 1e-6
            assert r[4, 0] == 1.0 and r[4, 1] == 0.0


def test_softmax_thread_split_invariance(each_isa, rng):
    x = (rng.standard_normal((97, 301)) * 4).astype(np.float32)
    x3 = (rng.standard_normal((5, 40, 131)) * 4).astype(np.float32)
    before = medconv.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            medconv.set_num_threads(n)
            outs.append([F.softmax(x, 1), F.log_softmax(x, 1), F.softmax(x3, 1), F.log_softmax(x3, 1)])
    finally:
        medconv.set_num_threads(before)
    for a, b, c in zip(*outs):
        assert bits_equal(a, b) and bits_equal(a, c)


@pytest.mark.skipif("avx512" not in ISAS, reason="needs a CPU with AVX-512")
@pytest.mark.parametrize("log", [False, True])
def test_softmax_columns_avx512_bitwise_avx2(rng, log):
    # softmax_columns.h in 16 lanes and in 8: each column's exp is picked by the maxima of its 16
    # columns on both, so the bits agree. Channel softmax of 1 to 300 rows (stage 1's lockstep widths
    # on either side of 8 rows), inner sizes with tails of every kind, short rows; maxima past the
    # scaled exp's range in some columns, -inf, NaN; 1 to 3 threads
    f = F.log_softmax if log else F.softmax
    shapes = [(2, 4, 256, 64), (3, 1, 37), (1, 2, 300), (2, 3, 1000), (4, 5, 77), (2, 7, 129), (1, 8, 64),
              (2, 9, 203), (3, 16, 33), (1, 31, 250), (1, 40, 70), (2, 300, 45), (300, 4), (77, 15), (64, 2),
              (1000, 7), (5, 1)]
    before = medconv.get_num_threads()
    try:
        for shape in shapes:
            x = (rng.standard_normal(shape) * float(rng.choice([1.0, 20.0]))).astype(np.float32)
            flat = x.reshape(-1)
            flat[rng.integers(0, flat.size, size=max(1, flat.size // 50))] += np.float32(rng.choice([1500.0, -2500.0]))
            flat[rng.integers(0, flat.size, size=3)] = -np.inf
            flat[rng.integers(0, flat.size)] = np.nan
            for n in (1, 2, 3):
                medconv.set_num_threads(n)
                a = on_isa("avx2", lambda: f(x, 1))
                b = on_isa("avx512", lambda: f(x, 1))
                assert bits_equal(a, b), f"{shape} log={log} threads={n}"
    finally:
        medconv.set_num_threads(before)


# ------------------------------------------------------------------------ maxout


def test_maxout_bitwise(each_isa, threads, rng):
    for _ in range(8):
        pieces = int(rng.integers(1, 5))
        shape = (int(rng.integers(1, 3)), pieces * int(rng.integers(1, 4)), int(rng.integers(1, 40)),
                 int(rng.integers(1, 30)))
        x = with_specials(rng, shape, frac=0.02)
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, flat.size // 10)] = 1.0  # ties
        dim = int(rng.choice([1, -1])) if shape[-1] % pieces == 0 else 1
        y = F.maxout(x, pieces, dim)
        want = on_isa("scalar", lambda: F.maxout(x, pieces, dim))
        assert bits_equal(y, want), f"maxout [{each_isa}] {shape} pieces={pieces} dim={dim}"
        clean = np.nan_to_num(x, nan=0.0)
        np.testing.assert_array_equal(F.maxout(clean, pieces, dim), reference.maxout(clean, pieces, dim))


def test_maxout_signed_zero_and_nan_order(each_isa):
    x = np.zeros((1, 2, 19), np.float32)
    x[0, 0] = -0.0  # ties keep the first piece: -0
    x[0, 1, 3] = np.nan
    y = F.maxout(x, 2, 1)
    assert np.signbit(y[0, 0, 0]) and np.isnan(y[0, 0, 3])


# ------------------------------------------------------------------------ pooling


def _pool_cases(rng, nd, n):
    """Pool configurations biased to the SIMD paths: W long enough for whole vectors, W stride 1 or
    2, the common kernels, plus anything else now and then."""
    common = {1: [(2, 2, 0), (3, 1, 1), (3, 2, 1)], 2: [(2, 2, 0), (3, 1, 1), (3, 2, 1), (3, 2, 0)],
              3: [(2, 2, 0), (3, 1, 1)]}[nd]
    for i in range(n):
        if i % 3 < 2:
            k, s, p = common[int(rng.integers(0, len(common)))]
            k, s, p = (k,) * nd, (s,) * nd, (p,) * nd
            d = (1,) * nd
        else:
            k = tuple(int(v) for v in rng.integers(1, 5, nd))
            s = tuple(int(v) for v in rng.integers(1, 4, nd))
            p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
            d = tuple(int(v) for v in rng.integers(1, 3, nd))
        ceil_mode = bool(rng.integers(0, 2))
        lead = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        spatial = tuple(int(rng.integers(3, 9)) for _ in range(nd - 1)) + (int(rng.integers(8, 60)),)
        yield lead + spatial, k, s, p, d, ceil_mode


def _max_pool(nd, x, k, s, p, d, ceil_mode):
    return getattr(F, f"max_pool{nd}d")(x, k, s, p, d, ceil_mode, True)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_bitwise(each_isa, threads, rng, nd):
    for shape, k, s, p, d, ceil_mode in _pool_cases(rng, nd, 10):
        x = with_specials(rng, shape, frac=0.03)
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, flat.size // 8)] = 0.5  # ties: the first one's index wins
        try:
            y, idx = _max_pool(nd, x, k, s, p, d, ceil_mode)
        except ValueError:  # a window wholly in the padding: not a valid call
            continue
        wy, widx = on_isa("scalar", lambda: _max_pool(nd, x, k, s, p, d, ceil_mode))
        what = f"max_pool{nd}d [{each_isa}] {shape} k={k} s={s} p={p} d={d} ceil={ceil_mode}"
        assert bits_equal(y, wy), what
        np.testing.assert_array_equal(idx, widx, err_msg=what)
        ry, ridx = getattr(reference, f"max_pool{nd}d")(x, k, s, p, d, ceil_mode, True)
        np.testing.assert_array_equal(y, ry, err_msg=what)
        np.testing.assert_array_equal(idx, ridx, err_msg=what)
        assert bits_equal(getattr(F, f"max_pool{nd}d")(x, k, s, p, d, ceil_mode), y)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool_bitwise(each_isa, threads, rng, nd):
    for shape, k, s, p, _, ceil_mode in _pool_cases(rng, nd, 10):
        x = rand(rng, shape, np.float32) * 3
        for count_include_pad, divisor in ((True, None), (False, None), (True, 5)):
            args = (x, k, s, p, ceil_mode, count_include_pad, divisor)
            f = getattr(F, f"avg_pool{nd}d")
            try:
                y = f(*args)
            except ValueError:
                continue
            what = f"avg_pool{nd}d [{each_isa}] {shape} k={k} s={s} p={p} ceil={ceil_mode} cip={count_include_pad} div={divisor}"
            assert bits_equal(y, on_isa("scalar", lambda: f(*args))), what
            want = getattr(reference, f"avg_pool{nd}d")(x.astype(np.float64), k, s, p, ceil_mode, count_include_pad, divisor)
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6, err_msg=what)


def test_pool_special_values(each_isa, rng):
    x = with_specials(rng, (2, 3, 9, 40), frac=0.2)
    for k, s, p in (((2, 2), 2, 0), ((3, 3), 1, 1), ((3, 3), 2, 1)):
        y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
        wy, widx = on_isa("scalar", lambda: F.max_pool2d(x, k, s, p, return_indices=True))
        assert bits_equal(y, wy) and np.array_equal(idx, widx)
        with np.errstate(invalid="ignore"):
            a = F.avg_pool2d(x, k, s, p)
            assert bits_equal(a, on_isa("scalar", lambda: F.avg_pool2d(x, k, s, p)))


def test_pool_thread_split_invariance(each_isa, rng):
    x = with_specials(rng, (2, 5, 37, 70), frac=0.01)
    x3 = with_specials(rng, (1, 3, 10, 12, 40), frac=0.01)
    before = medconv.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            medconv.set_num_threads(n)
            outs.append([*F.max_pool2d(x, 2, return_indices=True), F.avg_pool2d(x, 3, 1, 1),
                         *F.max_pool3d(x3, 2, return_indices=True)])
    finally:
        medconv.set_num_threads(before)
    for a, b, c in zip(*outs):
        assert bits_equal(a, b) and bits_equal(a, c)


def test_benchmark_shapes_match_torch(each_isa, maybe_torch, rng):
    """The BENCHMARKS.md pooling cases (smaller batch) against torch, bitwise for max."""
    if maybe_torch is None:
        pytest.skip("torch is not installed")
    torch = maybe_torch
    x = (rng.standard_normal((1, 4, 128, 128))).astype(np.float32)
    x3 = (rng.standard_normal((1, 2, 16, 32, 32))).astype(np.float32)
    tx, tx3 = torch.from_numpy(x), torch.from_numpy(x3)
    with torch.no_grad():
        ty, ti = torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)
        y, i = F.max_pool2d(x, 2, 2, return_indices=True)
        assert bits_equal(y, ty.numpy()) and np.array_equal(i, ti.numpy())
        np.testing.assert_allclose(F.avg_pool2d(x, 2, 2), torch.nn.functional.avg_pool2d(tx, 2, 2).numpy(),
                                   rtol=1e-6, atol=1e-7)
        ty3, ti3 = torch.nn.functional.max_pool3d(tx3, 2, 2, return_indices=True)
        y3, i3 = F.max_pool3d(x3, 2, 2, return_indices=True)
        assert bits_equal(y3, ty3.numpy()) and np.array_equal(i3, ti3.numpy())
