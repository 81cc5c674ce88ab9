"""The convolution weight gradient of channel-rich float32 layers against a plain numpy reference: the
packed GEMM with its columns gathered from the input (64+ output channels per group and 512+ weights
per output channel: strides, dilations, padding, groups, 3D, K chunks that cut an image, ragged
tiles), Winograd F(3x3, 4x4) for 3x3 stride-1 2D layers (its error bound, borders, groups, non-finite
inputs), and the same bits for any thread count."""
import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
from conftest import assert_close
from medconv.functional import backward as B


def weight_grad(x, gy, kernel, stride, padding, dilation, groups):
    """gw[oc, ic, k] = sum over n and output positions o of gy[n, oc, o] * x[n, g*Cg + ic, o*s - p + k*d]."""
    nd = len(kernel)
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    xp = np.pad(x64, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    cg, ocg = x.shape[1] // groups, gy.shape[1] // groups
    out = gy.shape[2:]
    gw = np.zeros((gy.shape[1], cg) + tuple(kernel))
    for k in np.ndindex(*kernel):
        window = tuple(slice(k[i] * dilation[i], k[i] * dilation[i] + stride[i] * (out[i] - 1) + 1, stride[i])
                       for i in range(nd))
        xs = xp[(slice(None), slice(None)) + window]  # [N, C, *out]
        for g in range(groups):
            gw[(slice(g * ocg, (g + 1) * ocg), slice(None)) + k] = np.tensordot(
                gy64[:, g * ocg:(g + 1) * ocg], xs[:, g * cg:(g + 1) * cg], axes=([0] + list(range(2, 2 + nd)),) * 2)
    return gw


CASES = [  # x shape, w shape, stride, padding, dilation, groups
    ((2, 64, 11, 13), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 128, 17, 10), (128, 64, 3, 3), (2, 1), (2, 1), (2, 1), 2),
    ((2, 64, 70, 65), (70, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),         # 4550 positions: two K chunks
    ((1, 24, 19, 23), (66, 24, 5, 5), (1, 2), (2, 0), (1, 1), 1),
    ((1, 32, 5, 6, 7), (64, 32, 2, 3, 3), (1, 1, 1), (1, 1, 0), (1, 1, 2), 1),
    ((3, 512, 4, 4), (64, 512, 1, 1), (1, 1), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_weight_grad_matches_reference(maybe_torch, isa, rng, case):
    xs, ws, stride, padding, dilation, groups = CASES[case]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    nd = len(xs) - 2
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = getattr(F, f"conv{nd}d")(x, w, **kw)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = getattr(B, f"conv{nd}d_backward")(gy, x, w, None, **kw, output_mask=(False, True, False))
    assert gx is None
    assert_close(gw, weight_grad(x, gy, ws[2:], stride, padding, dilation, groups), dtype=np.float32, scale=4)
    if maybe_torch is not None:
        tgw = maybe_torch.ops.aten.convolution_backward(
            maybe_torch.from_numpy(gy), maybe_torch.from_numpy(x), maybe_torch.from_numpy(w), None, list(stride),
            list(padding), list(dilation), False, [0] * nd, groups, [False, True, False])[1]
        assert_close(gw, tgw.numpy(), dtype=np.float32, scale=4, what="torch")


def test_weight_grad_same_bits_for_any_thread_count(isa, rng, monkeypatch):
    monkeypatch.setenv("MEDCONV_CONV_ALGO", "gemm")  # the packed GEMM (this 3x3 layer would take Winograd)
    x = rng.standard_normal((2, 64, 40, 70)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 64, 40, 70)).astype(np.float32)
    before = mc.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            mc.set_num_threads(t)
            results.append(B.conv2d_backward(gy, x, w, None, padding=1, output_mask=(False, True, False))[1])
    finally:
        mc.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# 3x3 stride-1 2D layers take Winograd F(3x3, 4x4) (16+ channels in and out per group, tile rows at
# most a quarter padding, 64+ tiles in all). Its extra rounding against the float64 reference:
# max |gw - gw64| <= BOUND_S * max(sum of |products|), measured <= 3.3e-7.
BOUND_S = 2e-6
WINOGRAD_CASES = [  # x shape, out channels, padding, groups
    ((2, 16, 32, 32), 16, 1, 1),
    ((1, 20, 29, 61), 36, 1, 1),   # tiles past the output's edge; channels not multiples of 8
    ((3, 32, 22, 23), 16, 2, 1),   # padding 2
    ((2, 20, 30, 30), 18, 0, 1),   # no padding
    ((1, 64, 34, 62), 32, 1, 2),   # groups
    ((5, 16, 17, 64), 16, 1, 1),   # several chunks of tile rows, the last one short
    ((1, 16, 20, 72), 16, 1, 1),   # input windows read in place, inside the rows
]
SIMD_ISAS = [i for i in ("avx2", "avx512") if i in mc.backend_info()["supported_isas"]]


def _winograd_case(rng, case):
    xs, oc, pad, groups = WINOGRAD_CASES[case]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal((oc, xs[1] // groups, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((xs[0], oc, xs[2] + 2 * pad - 2, xs[3] + 2 * pad - 2)).astype(np.float32)
    return x, w, gy, dict(padding=pad, groups=groups)


def _gw(gy, x, w, kw):
    return B.conv2d_backward(gy, x, w, None, **kw, output_mask=(False, True, False))[1]


@pytest.mark.skipif(not SIMD_ISAS, reason="Winograd's transforms are AVX2")
@pytest.mark.parametrize("isa_name", SIMD_ISAS)
@pytest.mark.parametrize("case", range(len(WINOGRAD_CASES)))
def test_winograd_weight_grad_error_bound(monkeypatch, maybe_torch, rng, isa_name, case):
    x, w, gy, kw = _winograd_case(rng, case)
    before = mc.backend_info()["isa"]
    mc._core.select_isa(isa_name)
    try:
        gw = _gw(gy, x, w, kw)
        monkeypatch.setenv("MEDCONV_CONV_ALGO", "gemm")  # the exact algorithms
        exact = _gw(gy, x, w, kw)
    finally:
        mc._core.select_isa(before)
    ref = weight_grad(x, gy, (3, 3), (1, 1), (kw["padding"],) * 2, (1, 1), kw["groups"])
    sums = weight_grad(np.abs(x), np.abs(gy), (3, 3), (1, 1), (kw["padding"],) * 2, (1, 1), kw["groups"])
    err = np.abs(gw.astype(np.float64) - ref).max()
    assert err <= BOUND_S * sums.max(), f"error {err:.3g} > {BOUND_S} * max sum {sums.max():.3g}"
    assert_close(exact, ref, dtype=np.float32, scale=4)
    assert not np.array_equal(gw, exact), "the case did not take Winograd"
    if maybe_torch is not None:
        tgw = maybe_torch.ops.aten.convolution_backward(
            maybe_torch.from_numpy(gy), maybe_torch.from_numpy(x), maybe_torch.from_numpy(w), None, [1, 1],
            [kw["padding"]] * 2, [1, 1], False, [0, 0], kw["groups"], [False, True, False])[1].numpy()
        terr = np.abs(gw.astype(np.float64) - tgw).max()
        assert terr <= 2 * BOUND_S * sums.max(), f"torch: difference {terr:.3g} > {2 * BOUND_S} * max sum"


@pytest.fixture
def simd_isa(request):
    before = mc.backend_info()["isa"]
    mc._core.select_isa(request.param)
    yield request.param
    mc._core.select_isa(before)


@pytest.mark.skipif(not SIMD_ISAS, reason="Winograd's transforms are AVX2")
@pytest.mark.parametrize("simd_isa", SIMD_ISAS, indirect=True)
def test_winograd_weight_grad_same_bits_for_any_thread_count(rng, simd_isa):
    x, w, gy, kw = _winograd_case(rng, 5)
    before = mc.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            mc.set_num_threads(t)
            results.append(_gw(gy, x, w, kw))
    finally:
        mc.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.skipif(not SIMD_ISAS, reason="Winograd's transforms are AVX2")
@pytest.mark.parametrize("simd_isa", SIMD_ISAS, indirect=True)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_winograd_weight_grad_non_finite_inputs_give_the_exact_result(monkeypatch, rng, simd_isa, bad):
    x, w, gy, kw = _winograd_case(rng, 0)
    x[1, 3, 7, 9] = bad
    gw = _gw(gy, x, w, kw)
    monkeypatch.setenv("MEDCONV_CONV_ALGO", "gemm")
    np.testing.assert_array_equal(gw, _gw(gy, x, w, kw))
