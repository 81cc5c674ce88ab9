"""The cached convolution plan: every algorithm the planner can pick agrees with the reference,
forced (MEDCONV_CONV_ALGO) or timed (MEDCONV_AUTOTUNE), and the choice is cached per shape."""
import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
import reference as ref
from conftest import assert_close, torch_apply
from medconv import _core

CASES = [  # (x shape, w shape, kwargs)
    ((2, 3, 21, 37), (5, 3, 3, 3), dict(padding=1)),
    ((1, 16, 19, 40), (12, 16, 3, 3), dict(padding=1)),
    ((2, 16, 18, 33), (8, 8, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((1, 12, 17, 29), (7, 12, 5, 3), dict(padding=(2, 0))),
    ((3, 8, 9, 35), (16, 8, 1, 1), dict()),
    ((1, 8, 6, 9, 20), (4, 8, 3, 3, 3), dict(padding=1)),
    ((2, 6, 30), (8, 3, 4), dict(padding=3, groups=2, dilation=2)),
    ((2, 64, 20, 24), (3, 64, 3, 3), dict(padding=1)),  # few outputs from many inputs: Winograd's by rule
    # inputs over 1 MiB per group: the GEMM packs its columns along the input rows
    ((1, 40, 75, 90), (6, 40, 3, 3), dict(stride=2, padding=1)),
    ((1, 40, 75, 90), (6, 40, 3, 3), dict(stride=(2, 3), padding=(0, 2))),
    ((1, 64, 90, 96), (8, 32, 3, 3), dict(padding=2, dilation=2, groups=2)),
    ((1, 24, 12, 40, 33), (5, 24, 3, 3, 3), dict(padding=(1, 2, 0), dilation=(1, 2, 1), stride=(1, 1, 2))),
    # small outputs: a GEMM panel's columns span several output rows, packed run by run
    ((1, 16, 4, 4), (32, 16, 3, 3), dict(padding=1)),
    ((2, 5, 7, 9), (6, 5, 3, 3), dict(stride=2, padding=2, dilation=2)),
    ((2, 3, 11), (4, 3, 5), dict(stride=2, padding=3)),
    ((1, 4, 3, 5, 6), (3, 4, 3, 3, 3), dict(padding=1)),
]


@pytest.fixture
def fresh_plans(monkeypatch):
    _core.clear_conv_plans()
    yield monkeypatch
    monkeypatch.delenv("MEDCONV_CONV_ALGO", raising=False)
    monkeypatch.delenv("MEDCONV_AUTOTUNE", raising=False)
    _core.clear_conv_plans()


def _conv(x, w, b, kw, relu):
    f = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.ndim]
    return f(x, w, b, activation="relu" if relu else None, **kw)


def _expected(x, w, b, kw, relu):
    f = {3: ref.conv1d, 4: ref.conv2d, 5: ref.conv3d}[x.ndim]
    y = f(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
    return np.maximum(y, 0) if relu else y


@pytest.mark.parametrize("case", [i for i, (xs, _, _) in enumerate(CASES) if np.prod(xs[1:]) * 4 > 1 << 20])
def test_row_order_packing_matches_torch(fresh_plans, maybe_torch, case):
    # the GEMM's row-order column packing (inputs over 1 MiB per group) against torch as well
    if maybe_torch is None:
        pytest.skip("torch is not installed")
    fresh_plans.setenv("MEDCONV_CONV_ALGO", "gemm")
    xs, ws, kw = CASES[case]
    rng = np.random.default_rng(100 + case)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    fn = {4: "conv2d", 5: "conv3d"}[x.ndim]
    assert_close(_conv(x, w, b, kw, False), torch_apply(maybe_torch, fn, x, w, b, **kw), dtype=np.float32)


@pytest.mark.parametrize("algo", ["direct", "gemm", "winograd"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_forced_algorithm_matches_reference(fresh_plans, algo, case):
    fresh_plans.setenv("MEDCONV_CONV_ALGO", algo)
    xs, ws, kw = CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    for relu in (False, True):
        got = _conv(x, w, b, kw, relu)
        # Winograd trades a bounded extra rounding error for speed (see test_winograd.py)
        assert_close(got, _expected(x, w, b, kw, relu), dtype=np.float32, scale=20 if algo == "winograd" else 1)
    if mc.backend_info()["isa"] != "scalar":  # the portable path has one algorithm and no plan
        plans = _core.conv_plans()
        assert plans, "the call left no cached plan"
        assert {p["algorithm"] for p in plans} <= {"direct", "gemm", "winograd"}


def test_autotune_picks_a_correct_algorithm(fresh_plans):
    fresh_plans.setenv("MEDCONV_AUTOTUNE", "1")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    first = F.conv2d(x, w, b, padding=1)
    assert_close(first, _expected(x, w, b, dict(padding=1), False), dtype=np.float32, scale=20)
    second = F.conv2d(x, w, b, padding=1)  # the cached plan: the same algorithm, the same bits
    np.testing.assert_array_equal(first, second)


def test_plan_is_cached_per_shape(fresh_plans):
    if mc.backend_info()["isa"] == "scalar":
        pytest.skip("the portable path has a single algorithm and no plan")
    x = np.ones((1, 4, 10, 10), np.float32)
    w = np.ones((2, 4, 3, 3), np.float32)
    F.conv2d(x, w)
    F.conv2d(x, w)
    assert len(_core.conv_plans()) == 1
    F.conv2d(x, w, padding=1)
    plans = _core.conv_plans()
    assert len(plans) == 2
    assert {(p["C"], p["OC"], p["pad_h"], p["OH"]) for p in plans} == {(4, 2, 0, 8), (4, 2, 1, 10)}


def _planned_on_avx2(xs, ws, **kw):
    """The algorithm the plan picks for a conv of ones on these shapes (the rules were measured on
    AVX2; other ISAs have their own)."""
    if mc.backend_info()["isa"] != "avx2":
        pytest.skip("the rule measured on AVX2; other ISAs have their own")
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[len(xs)]
    conv(np.ones(xs, np.float32), np.ones(ws, np.float32), **kw)
    return _core.conv_plans()[-1]["algorithm"]


@pytest.mark.parametrize("xs,ws,algo", [
    ((1, 4, 32, 32), (32, 4, 3, 3), "direct"),        # few inputs, many outputs: the direct kernel's channel tiles
    ((1, 6, 32, 32), (16, 6, 3, 3), "direct"),
    ((1, 8, 64, 64), (32, 8, 3, 3), "winograd"),      # 8 inputs in 2D: Winograd
    ((1, 4, 8, 32, 32), (16, 4, 3, 3, 3), "winograd"),  # 4 inputs in 3D (3 planes of taps each): Winograd
    ((1, 3, 8, 32, 32), (16, 3, 3, 3, 3), "direct"),
])
def test_rule_for_few_input_channels(fresh_plans, xs, ws, algo):
    assert _planned_on_avx2(xs, ws, padding=1) == algo


@pytest.mark.parametrize("xs,ws,algo", [
    ((1, 32, 40, 40), (32, 32, 5, 5), "direct"),      # 5x5 / 7x7 with up to 64 outputs: channel tiles, no packing
    ((1, 16, 30, 30), (64, 16, 7, 7), "direct"),
    ((1, 8, 6, 20, 20), (16, 8, 5, 5, 5), "direct"),
    ((1, 128, 16, 16), (128, 128, 5, 5), "gemm"),     # 128 outputs: the GEMM packs each column for enough rows
])
def test_rule_for_large_kernels(fresh_plans, xs, ws, algo):
    assert _planned_on_avx2(xs, ws, padding=ws[-1] // 2) == algo


@pytest.mark.parametrize("xs,ws,kw,algo", [
    ((2, 64, 300), (64, 64, 7), dict(padding=3), "direct"),       # 1D with many channels: channel tiles
    ((2, 64, 300), (128, 64, 7), dict(stride=2), "direct"),       # strided too, from phase rows
    ((2, 1, 300), (32, 1, 15), dict(padding=7), "direct"),        # a first layer: the direct kernel
    ((2, 64, 300), (4, 64, 3), dict(padding=1), "direct"),        # 4 outputs: one channel at a time
    ((2, 64, 300), (64, 64, 7), dict(padding=3, stride=5), "gemm"),  # strides over 4: the GEMM
])
def test_rule_for_1d_convs(fresh_plans, xs, ws, kw, algo):
    assert _planned_on_avx2(xs, ws, **kw) == algo


@pytest.mark.parametrize("xs,ws,algo", [
    ((2, 64, 64, 64), (2, 64, 1, 1), "direct"),         # a segmentation head: 1-8 outputs, no packing
    ((1, 32, 16, 32, 32), (8, 32, 1, 1, 1), "direct"),
    ((2, 64, 64, 64), (16, 64, 1, 1), "gemm"),          # 16 outputs: the GEMM
])
def test_rule_for_pointwise_heads(fresh_plans, xs, ws, algo):
    assert _planned_on_avx2(xs, ws) == algo


@pytest.mark.parametrize("xs,ws,kw,algo", [
    ((2, 32, 56, 56), (32, 1, 3, 3), dict(padding=1, stride=2, groups=32), "direct"),  # depthwise, W strided
    ((1, 8, 8, 32, 32), (8, 1, 3, 3, 3), dict(padding=1, stride=2, groups=8), "direct"),
    ((2, 1, 224, 224), (64, 1, 7, 7), dict(padding=3, stride=2), "gemm"),  # a grayscale stem: 64 outputs
])
def test_rule_for_w_strided_single_channel_convs(fresh_plans, xs, ws, kw, algo):
    assert _planned_on_avx2(xs, ws, **kw) == algo
