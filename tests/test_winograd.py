"""Winograd F(4x4, 3x3) convolution (cpp/winograd_avx2.cpp) and, for 3x3 stride-2 convs, F(4x4, 2x2)
over the four stride phases (cpp/winograd_s2_avx2.cpp): their extra rounding error, measured against
float64 and bounded, and their edge cases (border tiles, odd sizes, channel counts that are not
multiples of the 6x16 GEMM tiles, padding, dilation, groups, 3D, fused ReLU, threads, non-finite
inputs).

The error bound. Winograd computes y = A^T [(G g G^T) .* (B^T d B)] A; the transforms amplify
float32 rounding (entries up to 5 in B, 8 in A), so its error is larger than a direct or GEMM sum's.
Measured on this machine (float32 data, float64 reference, worst of 3 runs each):

  unit-normal x and w, C = 8 .. 512 input channels (2D), 8 .. 128 (3x3x3):
      max|y - y64| / max|y64|           2.9e-6 (C=8) .. 1.2e-5 (C>=256); implicit GEMM: <= 5e-7
  the same, relative to the magnitude of the sum (S = conv(|x|, |w|) + |b|):
      max|y - y64| / max S              <= 1.4e-6
  x = 1000 + unit normal (CT-like offset), zero-sum or unit-normal w:  max/max S <= 1.2e-7

The stride-2 F(4x4, 2x2) (transforms with entries up to 3 in B, 8 in A), unit-normal x and w,
C = 8 .. 300:  max|y - y64| / max|y64| <= 7e-6.

Bounds asserted here, with a margin of ~4x over those measurements:
  BOUND_Y = 5e-5:  max|y - y64| <= BOUND_Y * max|y64|   (unit-normal or uniform data)
  BOUND_S = 1e-5:  max|y - y64| <= BOUND_S * max S       (any data)
"""

import numpy as np
import pytest

import medconv
import medconv.functional as F
from conftest import assert_close, torch_conv
from medconv import _core

BOUND_Y = 5e-5
BOUND_S = 1e-5

pytestmark = pytest.mark.skipif(
    "avx2" not in medconv.backend_info()["supported_isas"], reason="Winograd is an AVX2+FMA kernel"
)


@pytest.fixture(params=[i for i in ("avx2", "avx512") if i in medconv.backend_info()["supported_isas"]])
def winograd(monkeypatch, request):
    """AVX2 and AVX-512 kernels (the transforms are AVX2's; the GEMMs each ISA's own, packed_gemm.h)
    with Winograd forced wherever it applies (3x3 in H, W, stride 1 in H, W); restores the automatic
    ISA choice, the thread count and fresh plans afterwards."""
    threads = medconv.get_num_threads()
    _core.select_isa(request.param)
    monkeypatch.setenv("MEDCONV_CONV_ALGO", "winograd")
    _core.clear_conv_plans()
    yield monkeypatch
    monkeypatch.delenv("MEDCONV_CONV_ALGO", raising=False)
    _core.clear_conv_plans()
    _core.select_isa("auto")
    medconv.set_num_threads(threads)


@pytest.fixture
def auto_plan():
    """AVX2 kernels and the planner's own choice; restores "auto" and fresh plans afterwards."""
    _core.select_isa("avx2")
    _core.clear_conv_plans()
    yield
    _core.clear_conv_plans()
    _core.select_isa("auto")


def _conv(x, *args, **kw):
    return (F.conv2d if x.ndim == 4 else F.conv3d)(x, *args, **kw)


def _reference(x, w, b, relu=False, **kw):
    """float64 result (medconv's float64 path, the exact reference kernels) and the sum's magnitude."""
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    y = _conv(f64(x), f64(w), f64(b), **kw)
    s = _conv(np.abs(f64(x)), np.abs(f64(w)), None if b is None else np.abs(f64(b)), **kw)
    return (np.maximum(y, 0) if relu else y), s


def _last_algorithm():
    plans = _core.conv_plans()
    assert plans, "the call left no cached plan"
    return plans[-1]["algorithm"]


def _check(x, w, b, relu=False, bound_y=BOUND_Y, **kw):
    y = _conv(x, w, b, activation="relu" if relu else None, **kw)
    ref, s = _reference(x, w, b, relu, **kw)
    assert y.dtype == np.float32 and y.shape == ref.shape
    err = np.abs(y.astype(np.float64) - ref).max()
    what = f"x{x.shape} w{w.shape} bias={b is not None} relu={relu} {kw}"
    assert err <= BOUND_S * s.max(), f"{what}: error {err:.3g} > {BOUND_S} * max S {s.max():.3g}"
    if bound_y is not None:
        assert err <= bound_y * np.abs(ref).max(), f"{what}: error {err:.3g} > {bound_y} * max|y| {np.abs(ref).max():.3g}"
    return y


# (N, C, OC, H, W, kwargs): border tiles (sizes not multiples of 4), odd and tiny sizes, channel
# counts that are not multiples of 6 (GEMM rows) or 16 (GEMM columns), paddings 0/1/2, 'valid',
# 'same', asymmetric paddings, dilations 1-3 (2 along W has its own tile layout), groups.
CASES_2D = [
    (1, 8, 8, 8, 8, dict(padding=1)),
    (2, 13, 17, 23, 29, dict(padding=1)),
    (3, 9, 7, 5, 6, dict(padding=0)),
    (1, 16, 20, 4, 4, dict(padding=2)),
    (2, 10, 11, 17, 31, dict(padding="valid")),
    (1, 19, 13, 21, 18, dict(padding="same")),
    (2, 8, 25, 11, 37, dict(padding=(0, 2))),
    (1, 12, 12, 3, 3, dict(padding=1)),
    (1, 7, 5, 1, 1, dict(padding=1)),
    (3, 8, 16, 33, 35, dict(padding=2, dilation=2)),
    (2, 9, 10, 26, 27, dict(padding="same", dilation=(1, 2))),
    (1, 11, 9, 19, 41, dict(padding=(2, 0), dilation=(2, 1))),
    (2, 8, 8, 20, 22, dict(padding=3, dilation=3)),
    (1, 8, 8, 17, 23, dict(padding=(1, 2), dilation=(3, 2))),
    (2, 8, 9, 9, 14, dict(padding=2, dilation=2)),  # H phases with 2 and 1 tile rows: not folded
    (1, 9, 8, 22, 25, dict(padding=1, dilation=(2, 3))),
    (2, 16, 24, 21, 19, dict(padding=1, groups=2)),
    (1, 24, 30, 15, 16, dict(padding="same", dilation=2, groups=3)),
    (1, 70, 40, 12, 13, dict(padding=1)),
    (1, 300, 20, 9, 10, dict(padding=1)),  # K = 300 > 256: the GEMM's K blocking
    # filters over 2 MB with few tiles: blocks split their output channels among the threads
    (2, 128, 130, 6, 7, dict(padding=1)),
    (1, 128, 136, 9, 10, dict(padding=2, dilation=2)),
]


@pytest.mark.parametrize("case", range(len(CASES_2D)))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_error_bound_2d(winograd, rng, case, threads):
    medconv.set_num_threads(threads)
    n, c, oc, h, w_, kw = CASES_2D[case]
    g = kw.get("groups", 1)
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((oc, c // g, 3, 3)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32) if case % 3 else None
    for relu in (False, True):
        _check(x, w, b, relu, **kw)
    assert _last_algorithm() == "winograd"


def _check_winograd_and_torch(maybe_torch, x, w, b, kw):
    """_check with and without the fused ReLU, Winograd the algorithm, and torch's result where installed."""
    for relu in (False, True):
        y = _check(x, w, b, relu, **kw)
        assert _last_algorithm() == "winograd"
        if maybe_torch is not None:
            t = torch_conv(maybe_torch, x, w, b, **kw)
            assert_close(y, np.maximum(t, 0) if relu else t, dtype=np.float32, scale=5,
                         what=f"torch x{x.shape} {kw} relu={relu}")


# Stride 2, 3x3: (N, C, OC, H, W, kwargs). Rows of tiles that do not fill the 8 lanes (W up to 8
# tiles, not multiples of 8), odd sizes and border tiles, paddings 0/1/2 and asymmetric ones (the
# phases start at even or odd columns), groups, K = 4 * C > 256 (the GEMM's K slices), one output.
CASES_S2 = [
    (1, 8, 8, 16, 16, dict(padding=1)),
    (2, 13, 17, 23, 29, dict(padding=1)),
    (3, 9, 7, 9, 9, dict(padding=0)),
    (1, 8, 6, 70, 140, dict(padding=2)),
    (2, 10, 11, 17, 66, dict(padding=(0, 1))),
    (1, 19, 13, 21, 18, dict(padding=(2, 0))),
    (2, 16, 24, 21, 19, dict(padding=1, groups=2)),
    (1, 24, 30, 35, 37, dict(padding=1, groups=3)),
    (1, 70, 40, 12, 13, dict(padding=1)),
    (1, 100, 20, 19, 37, dict(padding=1)),  # K = 400 > 256
    (1, 5, 3, 3, 3, dict(padding=1)),
    (1, 8, 8, 2, 2, dict(padding=1)),
]


def _s2_case(rng, case):
    n, c, oc, h, w_, kw = CASES_S2[case]
    g = kw.get("groups", 1)
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((oc, c // g, 3, 3)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32) if case % 3 else None
    return x, w, b, dict(kw, stride=2)


# Stride 2 in (H, W), 3D: (N, C, OC, D, H, W, kernel, kwargs). Depth runs direct: kernel depths 1, 3, 5,
# depth strides 1-3, dilation, padding (tap planes outside the input), groups, K = 3 * 4 * C > 256.
CASES_S2_3D = [
    (1, 8, 8, 9, 16, 16, (3, 3, 3), dict(stride=2, padding=1)),
    (2, 13, 17, 7, 23, 29, (3, 3, 3), dict(stride=2, padding=1)),
    (1, 8, 6, 9, 21, 19, (3, 3, 3), dict(stride=(1, 2, 2), padding=(0, 1, 1))),
    (1, 8, 6, 9, 21, 19, (5, 3, 3), dict(stride=(3, 2, 2), padding=(2, 1, 1), dilation=(2, 1, 1))),
    (1, 8, 6, 4, 21, 19, (1, 3, 3), dict(stride=(1, 2, 2), padding=(0, 1, 1))),
    (2, 16, 24, 5, 21, 19, (3, 3, 3), dict(stride=2, padding=1, groups=2)),
    (1, 30, 20, 5, 19, 37, (3, 3, 3), dict(stride=2, padding=(2, 1, 1))),
]


@pytest.mark.parametrize("case", range(len(CASES_S2_3D)))
@pytest.mark.parametrize("threads", [1, 3])
def test_error_bound_stride2_3d(winograd, maybe_torch, rng, case, threads):
    medconv.set_num_threads(threads)
    n, c, oc, d, h, w_, k, kw = CASES_S2_3D[case]
    x = rng.standard_normal((n, c, d, h, w_)).astype(np.float32)
    w = rng.standard_normal((oc, c // kw.get("groups", 1)) + k).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32) if case % 2 else None
    _check_winograd_and_torch(maybe_torch, x, w, b, kw)


@pytest.mark.parametrize("case", range(len(CASES_S2)))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_error_bound_stride2(winograd, maybe_torch, rng, case, threads):
    medconv.set_num_threads(threads)
    x, w, b, kw = _s2_case(rng, case)
    _check_winograd_and_torch(maybe_torch, x, w, b, kw)


def test_stride2_same_bits_for_any_thread_count_fused_relu_and_out(winograd, rng):
    x = rng.standard_normal((3, 16, 70, 75)).astype(np.float32)
    w = rng.standard_normal((20, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    results = {}
    for threads in (1, 2, 3):
        medconv.set_num_threads(threads)
        results[threads] = F.conv2d(x, w, b, stride=2, padding=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(results[threads], results[1])
    fused = F.conv2d(x, w, b, stride=2, padding=1, activation="relu")
    np.testing.assert_array_equal(fused, np.maximum(results[1], 0))
    out = np.full_like(fused, np.nan)
    F.conv2d(x, w, b, stride=2, padding=1, activation="relu", out=out)
    np.testing.assert_array_equal(out, fused)


CASES_3D = [  # (N, C, OC, D, H, W, kernel, kwargs): depth runs direct, any kernel depth / stride / dilation
    (1, 8, 8, 7, 9, 10, (3, 3, 3), dict(padding=1)),
    (2, 9, 13, 5, 11, 6, (3, 3, 3), dict(padding="same")),
    (1, 8, 8, 9, 10, 11, (3, 3, 3), dict(stride=(2, 1, 1), padding=1)),
    (2, 8, 6, 9, 10, 11, (5, 3, 3), dict(stride=(3, 1, 1), padding=(2, 1, 1), dilation=(2, 1, 1))),
    (1, 8, 8, 6, 9, 21, (3, 3, 3), dict(padding=2, dilation=2)),
    (1, 10, 8, 4, 10, 11, (1, 3, 3), dict(padding=(0, 1, 1))),
    (1, 100, 8, 5, 10, 11, (3, 3, 3), dict(padding=1)),  # K = 3 * 100 > 256
]


@pytest.mark.parametrize("case", range(len(CASES_3D)))
@pytest.mark.parametrize("threads", [1, 3])
def test_error_bound_3d(winograd, rng, case, threads):
    medconv.set_num_threads(threads)
    n, c, oc, d, h, w_, k, kw = CASES_3D[case]
    x = rng.standard_normal((n, c, d, h, w_)).astype(np.float32)
    w = rng.standard_normal((oc, c) + k).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    for relu in (False, True):
        _check(x, w, b, relu, **kw)
    assert _last_algorithm() == "winograd"


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("c", [64, 256])
def test_error_bound_many_channels(winograd, rng, c, stride):
    """The error grows with the channel count (longer GEMM sums of transformed values) and levels
    off: unit-normal data at S3/S4/S5-like depths."""
    x = rng.standard_normal((2, c, 16 * stride, 16 * stride)).astype(np.float32)
    w = rng.standard_normal((32, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    _check(x, w, b, padding=1, stride=stride)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kind", ["offset", "offset zero-sum weights", "uniform positive"])
def test_error_bound_other_data(winograd, rng, kind, stride):
    """CT-like data (values around 1000 with small variations), edge filters (weights summing to
    zero: tiny outputs from big inputs) and all-positive data. For the zero-sum filters only the
    bound relative to the sum's magnitude (conv(|x|, |w|)) is meaningful."""
    x = rng.standard_normal((2, 32, 20 * stride, 20 * stride)).astype(np.float32)
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    if "offset" in kind:
        x = x + np.float32(1000)
    if "zero-sum" in kind:
        w = (w - w.mean(axis=(2, 3), keepdims=True)).astype(np.float32)
    if kind == "uniform positive":
        x = rng.uniform(0, 1, x.shape).astype(np.float32)
        w = rng.uniform(0, 1, w.shape).astype(np.float32)
    _check(x, w, rng.standard_normal(16).astype(np.float32), bound_y=None if "zero-sum" in kind else BOUND_Y,
           padding=1, stride=stride)


def test_same_bits_for_any_thread_count(winograd, rng):
    x = rng.standard_normal((3, 16, 37, 45)).astype(np.float32)
    w = rng.standard_normal((20, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    x3 = rng.standard_normal((2, 8, 9, 21, 19)).astype(np.float32)
    w3 = rng.standard_normal((8, 8, 3, 3, 3)).astype(np.float32)
    xd = rng.standard_normal((2, 128, 7, 6)).astype(np.float32)
    wd = rng.standard_normal((131, 128, 3, 3)).astype(np.float32)
    bd = rng.standard_normal(131).astype(np.float32)
    results = {}
    for threads in (1, 2, 3):
        medconv.set_num_threads(threads)
        results[threads] = (F.conv2d(x, w, b, padding=1), F.conv2d(x, w, b, padding=2, dilation=2),
                            F.conv3d(x3, w3, None, padding=1, activation="relu"),
                            F.conv2d(xd, wd, bd, padding=1))  # big filters, few tiles: split by output channel
    for threads in (2, 3):
        for a, e in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, e)


def test_fused_relu_and_out(winograd, rng):
    """The fused ReLU is max(0, .) of the same sums: equal bits to relu(conv); out= gets the same."""
    x = rng.standard_normal((2, 12, 19, 22)).astype(np.float32)
    w = rng.standard_normal((14, 12, 3, 3)).astype(np.float32)
    b = rng.standard_normal(14).astype(np.float32)
    plain = F.conv2d(x, w, b, padding=1)
    fused = F.conv2d(x, w, b, padding=1, activation="relu")
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))
    out = np.full_like(plain, np.nan)
    F.conv2d(x, w, b, padding=1, activation="relu", out=out)
    np.testing.assert_array_equal(out, fused)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_fall_back_to_exact(winograd, rng, bad, stride):
    """Winograd's transforms would spread a NaN or Inf over its whole 4x4 tile (and Inf - Inf makes
    NaN); the kernel detects non-finite outputs and the planner recomputes exactly, so NaN/Inf land
    where the reference puts them."""
    x = rng.standard_normal((1, 8, 16, 16)).astype(np.float32)
    x[0, 3, 7, 9] = bad
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, None, padding=1, stride=stride)
    ref = F.conv2d(x.astype(np.float64), w.astype(np.float64), None, padding=1, stride=stride)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    np.testing.assert_array_equal(y[np.isinf(y)], ref[np.isinf(ref)].astype(np.float32))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(y[finite], ref[finite], rtol=1e-5, atol=1e-5 * np.abs(ref[finite]).max())


def test_scalar_isa_against_avx2(auto_plan, rng):
    """The planner's own choice: Winograd on AVX2 for a channel-rich 3x3 conv, the portable
    reference kernel under select_isa("scalar"); the two agree within the bound."""
    x = rng.standard_normal((2, 32, 24, 20)).astype(np.float32)
    w = rng.standard_normal((24, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    x2 = rng.standard_normal((2, 32, 64, 60)).astype(np.float32)
    for xx, kw in ((x, dict(padding=1)), (x, dict(padding=2, dilation=2)), (x2, dict(padding=1, stride=2))):
        fast = F.conv2d(xx, w, b, activation="relu", **kw)
        assert _last_algorithm() == "winograd"
        _core.select_isa("scalar")
        try:
            exact = F.conv2d(xx, w, b, activation="relu", **kw)
        finally:
            _core.select_isa("avx2")
        err = np.abs(fast.astype(np.float64) - exact).max()
        assert err <= BOUND_Y * np.abs(exact).max(), f"{kw}: {err:.3g}"
        assert not np.array_equal(fast, exact)  # really two different algorithms


@pytest.mark.parametrize("xs,ws,kw,expected", [
    ((2, 16, 24, 24), (16, 16, 3, 3), dict(padding=1), "winograd"),
    ((1, 32, 8, 16, 16), (16, 32, 3, 3, 3), dict(padding=1), "winograd"),
    ((2, 16, 24, 24), (16, 16, 3, 3), dict(padding=2, dilation=2), "winograd"),
    ((2, 16, 24, 24), (32, 8, 3, 3), dict(padding=1, groups=2), "winograd"),
    ((2, 4, 24, 24), (16, 4, 3, 3), dict(padding=1), None),           # too few input channels
    ((2, 16, 24, 24), (4, 16, 3, 3), dict(padding=1), None),          # too few output channels
    ((2, 64, 32, 32), (2, 64, 3, 3), dict(padding=1), "winograd"),    # few outputs, but 64 inputs
    ((2, 64, 32, 32), (1, 64, 3, 3), dict(padding=1), None),          # one output channel: direct
    ((2, 16, 24, 24), (16, 1, 3, 3), dict(padding=1, groups=16), None),  # depthwise: direct
    ((2, 16, 24, 24), (16, 16, 3, 3), dict(padding=1, stride=2), None),  # 12 wide: 3 of 8 lanes used
    ((2, 16, 64, 64), (16, 16, 3, 3), dict(padding=1, stride=2), "winograd"),
    ((2, 16, 64, 56), (16, 16, 3, 3), dict(padding=1, stride=2), "winograd"),  # 7 of 8 lanes
    ((2, 16, 32, 32), (16, 16, 3, 3), dict(padding=1, stride=2), None),  # 4 of 8 lanes
    ((2, 4, 64, 64), (16, 4, 3, 3), dict(padding=1, stride=2), None),  # too few input channels
    ((2, 16, 64, 64), (16, 16, 3, 3), dict(padding=1, stride=2, dilation=2), None),
    ((1, 16, 8, 64, 64), (16, 16, 3, 3, 3), dict(padding=1, stride=2), "winograd"),  # 3D
    ((1, 16, 8, 64, 64), (16, 16, 3, 3, 3), dict(padding=1, stride=(2, 1, 1)), "winograd"),  # stride 1 in (H, W)
    ((1, 16, 8, 32, 32), (16, 16, 3, 3, 3), dict(padding=1, stride=2), None),  # 4 of 8 lanes
    ((1, 256, 64, 64), (256, 256, 3, 3), dict(padding=1, stride=2), None),  # 21 MB of filters for 64 tiles
    ((2, 128, 64, 64), (128, 128, 3, 3), dict(padding=1, stride=2), "winograd"),  # and for 128
    ((2, 16, 24, 24), (16, 16, 5, 5), dict(padding=2), None),
    ((1, 16, 5, 5), (16, 16, 3, 3), dict(padding=0), None),           # 3x3 outputs: tiles mostly empty
    ((8, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "winograd"),  # 37 MB of filters for 32 tiles: 2.1x
    ((2, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), None),        # and for 8 tiles: 0.5-0.9x
    ((1, 128, 14, 14), (128, 128, 3, 3), dict(padding=1), "winograd"),  # 16 tiles: 1.8-2.5x
    ((8, 256, 16, 16), (256, 256, 3, 3), dict(padding=1), "winograd"),  # S4: 9 MB for 128 tiles
])
def test_planner_rule(auto_plan, xs, ws, kw, expected):
    x = np.ones(xs, np.float32)
    w = np.ones(ws, np.float32)
    _conv(x, w, None, **kw)
    algo = _last_algorithm()
    if expected:
        assert algo == expected
    else:
        assert algo != "winograd"


def test_algo_env_turns_winograd_off(auto_plan, monkeypatch, rng):
    monkeypatch.setenv("MEDCONV_CONV_ALGO", "gemm")
    x = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    F.conv2d(x, w, padding=1)
    assert _last_algorithm() == "gemm"
