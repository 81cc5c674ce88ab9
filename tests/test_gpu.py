"""Every op and gradient on the GPU path against the CPU path (itself checked against torch and
tests/reference.py), over random shapes and arguments; dispatch, mixing errors, out=, determinism.

Two backends run the same test bodies:
- "cupy": CuPy on a CUDA GPU (marked `gpu`; skipped without CuPy or without a device);
- "emulated": tests/emulated_cupy.py, the same CUDA kernel sources compiled with g++ and run on
  the CPU (one OS thread per CUDA thread), which checks the kernels' indexing, tiling, reductions
  and the Python dispatch on machines without a GPU (skipped without a C++ compiler).
"""
import sys

import numpy as np
import pytest

import medconv
import medconv._cuda as _cuda
import medconv._gpu as G
import medconv.functional as F
import medconv.functional.backward as B
import medconv.functional.extra as E
from conftest import DTYPES, assert_close, conv_case, pad_case, pool_case, rand

CASES = 5


def _real_cupy():
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        pytest.skip(f"CuPy is not importable: {exc}")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as exc:
        pytest.skip(f"no CUDA device: {exc}")
    return cupy


def _clear_caches():
    _cuda._modules.clear()
    _cuda._functions.clear()
    _cuda._props.clear()


@pytest.fixture(scope="module", params=[pytest.param("cupy", marks=pytest.mark.gpu), "emulated"])
def cp(request):
    """The CuPy module the GPU path runs on: the real one, or the CPU emulation of the kernels."""
    saved = sys.modules.get("cupy")
    if request.param == "cupy":
        mod = _real_cupy()
    else:
        import emulated_cupy

        if emulated_cupy.compiler() is None:
            pytest.skip("no C++ compiler for the CUDA kernel emulation")
        mod = emulated_cupy.install()
    sys.modules["cupy"] = mod
    _clear_caches()
    try:
        yield mod
    finally:
        _clear_caches()
        if saved is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved


def gpu(cp, *arrays):
    out = tuple(None if a is None else cp.asarray(a) for a in arrays)
    return out if len(out) > 1 else out[0]


def cpu(cp, a):
    assert a is None or isinstance(a, cp.ndarray), f"expected a CuPy array, got {type(a).__name__}"
    return None if a is None else cp.asnumpy(a)


def close(cp, got, expected, dtype, scale=10.0, what=""):
    if expected is None:
        assert got is None, what
        return
    assert_close(cpu(cp, got), expected, dtype, scale=scale, what=what)


# ------------------------------------------------------------------ convolution


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv(cp, rng, nd, dtype):
    for case in range(CASES):
        x, w, b, kw = conv_case(rng, nd, dtype)
        act = "relu" if case % 2 else None
        f = getattr(F, f"conv{nd}d")
        expected = f(x, w, b, activation=act, **kw)
        close(cp, f(*gpu(cp, x, w), gpu(cp, b), activation=act, **kw), expected, dtype, what=f"{kw}")
        gy = rand(rng, expected.shape, dtype)
        want = getattr(B, f"conv{nd}d_backward")(gy, x, w, b, **kw)
        got = getattr(B, f"conv{nd}d_backward")(*gpu(cp, gy, x, w), gpu(cp, b), **kw)
        for g, e, name in zip(got, want, ("grad_input", "grad_weight", "grad_bias")):
            close(cp, g, e, dtype, scale=30.0, what=f"{name} {kw}")


# (N, C, spatial, OC, kernel, kwargs): the direct kernels, each tile shape of the implicit GEMM,
# split-K weight gradients, groups, strides, dilations
CONV_SHAPES = [
    (2, 1, (9, 11), 1, (3, 3), dict(padding=1)),                        # one channel: direct
    (2, 6, (8, 7), 6, (3, 3), dict(padding=1, groups=6)),               # depthwise: direct
    (2, 3, (10, 9), 12, (3, 3), dict(padding=1)),                       # bn16
    (1, 5, (9, 8), 24, (3, 2), dict(stride=2, padding=(1, 0))),         # bn32
    (2, 20, (6, 7), 40, (3, 3), dict(padding=2, dilation=2)),           # bn64, Cg 20: GEMM input grad
    (2, 24, (7, 6), 48, (1, 1), {}),                                    # pointwise
    (1, 16, (5, 6, 7), 18, (3, 3, 3), dict(padding=1, groups=2)),       # 3d, groups
    (2, 8, (40, 40), 8, (3, 3), dict(padding=1)),                       # long reduction: split-K
    (1, 2, (60,), 3, (5,), dict(stride=3, padding=2)),                  # 1d
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,spatial,oc,k,kw", CONV_SHAPES)
def test_conv_paths(cp, rng, n, c, spatial, oc, k, kw, dtype):
    nd = len(spatial)
    groups = kw.get("groups", 1)
    x = rand(rng, (n, c, *spatial), dtype)
    w = rand(rng, (oc, c // groups, *k), dtype)
    b = rand(rng, (oc,), dtype)
    f = getattr(F, f"conv{nd}d")
    y = f(x, w, b, **kw)
    close(cp, f(*gpu(cp, x, w, b), **kw), y, dtype)
    gy = rand(rng, y.shape, dtype)
    want = getattr(B, f"conv{nd}d_backward")(gy, x, w, b, **kw)
    got = getattr(B, f"conv{nd}d_backward")(*gpu(cp, gy, x, w, b), **kw)
    for g, e, name in zip(got, want, ("grad_input", "grad_weight", "grad_bias")):
        close(cp, g, e, dtype, scale=30.0, what=name)


# (forward kernel, N, C, spatial, OC, kernel, bias, kwargs): at most 4 output channels per group go
# to the shared-memory tiled direct kernels, unless their input tile does not fit (conv_direct_forward)
TILED = "conv_direct_tiled_forward"
TILED_CONV_SHAPES = [
    (TILED, 2, 4, (9, 37), 4, (3, 3), True, dict(padding=1, groups=4, activation="relu")),  # depthwise
    (TILED, 1, 3, (61, 30), 6, (3, 3), True, dict(padding=1, groups=3)),                # channel multiplier 2
    (TILED, 1, 4, (8, 10), 6, (3, 3), False, dict(padding=1, groups=2)),                # 2 in, 3 out per group
    (TILED, 1, 5, (9, 10), 4, (3, 3), True, dict(padding=1, activation="relu")),        # 5 in, 4 out
    (TILED, 1, 40, (9, 10), 2, (3, 3), True, dict(padding=1)),                          # 40 in: several passes
    (TILED, 2, 3, (17, 21), 3, (3, 3), True, dict(stride=2, padding=1, groups=3)),      # stride 2
    (TILED, 1, 2, (15, 19), 2, (3, 3), False, dict(padding=2, dilation=2, groups=2)),   # dilation 2
    (TILED, 1, 2, (10, 12), 2, (3, 5), True, dict(stride=(1, 2), padding=(1, 2), groups=2)),  # 3 x 5
    (TILED, 1, 1, (9, 11), 1, (2, 4), True, dict(padding="same")),                      # asymmetric padding
    (TILED, 1, 2, (20, 23), 2, (2, 2), False, dict(stride=3, groups=2)),                # stride > kernel
    (TILED, 1, 3, (5, 6, 7), 3, (3, 3, 3), True, dict(stride=(2, 1, 1), padding=1, groups=3)),  # 3d
    (TILED, 2, 1, (37, 53), 1, (5, 5), True, dict(padding=2, activation="relu")),       # partial edge tiles
    (TILED, 1, 4, (37, 53), 6, (5, 5), False, dict(padding=2, groups=2)),               # 64 x 8 tiles
    (TILED, 1, 1, (61, 30), 1, (7, 7), False, dict(padding=3)),                         # 32 x 32 tiles
    (TILED, 1, 2, (300,), 2, (5,), True, dict(padding=2, groups=2)),                    # 1d: 256-wide tiles
    (TILED, 1, 2, (50, 14), 2, (3, 3), True, dict(padding=1, groups=2, activation="relu")),  # 16 x 64 tiles
    (TILED, 3, 48, (5, 6), 48, (3, 3), True, dict(padding=1, groups=48)),               # grid y and z: 48 x 3
    ("conv_direct_forward", 1, 1, (9, 11), 1, (31, 31), True, dict(padding=60, dilation=4)),  # too large
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,n,c,spatial,oc,k,bias,kw", TILED_CONV_SHAPES)
def test_conv_tiled_direct(cp, rng, monkeypatch, kernel, n, c, spatial, oc, k, bias, kw, dtype):
    nd = len(spatial)
    x = rand(rng, (n, c, *spatial), dtype)
    if "activation" in kw:
        x.flat[x.size // 3] = np.nan  # the fused ReLU keeps NaN
    w = rand(rng, (oc, c // kw.get("groups", 1), *k), dtype)
    b = rand(rng, (oc,), dtype) if bias else None
    launched = []
    typed = _cuda.typed
    monkeypatch.setattr(_cuda, "typed", lambda family, base, dt: launched.append(base) or typed(family, base, dt))
    f = getattr(F, f"conv{nd}d")
    close(cp, f(*gpu(cp, x, w), gpu(cp, b), **kw), f(x, w, b, **kw), dtype)
    assert len(launched) == 1 and launched[0].startswith(kernel), launched


# (N, C, spatial, OC, kernel, kwargs) for the wide-tile forward GEMM (more than 32 output channels per
# group): partial row and column blocks, reductions that are not a multiple of its 8-deep steps
WIDE_CONV_SHAPES = [
    (2, 20, (6, 7), 40, (3, 3), dict(padding=2, dilation=2)),               # bn64
    (1, 24, (9, 13), 72, (3, 3), dict(padding=1, activation="relu")),       # bn128, one partial column block
    (1, 8, (4, 5, 6), 80, (3, 3, 3), dict(padding=1, groups=2)),            # 3d, groups: grid z
    (2, 12, (17, 15), 40, (3, 3), dict(stride=2, padding=1)),               # stride 2
    (2, 9, (150,), 33, (5,), dict(padding=2)),                              # 1d, K = 45
    (3, 24, (7, 6), 130, (1, 1), {}),                                       # pointwise, two column blocks
    (1, 5, (10, 11), 34, (2, 4), dict(padding="same")),                     # asymmetric padding
    (1, 70, (6, 6), 40, (3, 3), dict(padding=(0, 1), stride=(1, 2))),       # K = 630
    (2, 7, (5, 6, 7), 20, (3, 3, 3), dict(padding=1, activation="relu")),   # bn32, 3d
    (1, 12, (11, 9), 48, (3, 3), dict(padding=1, groups=2)),                 # bn32, groups
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,spatial,oc,k,kw", WIDE_CONV_SHAPES)
@pytest.mark.parametrize("rows", [128, 64])
def test_conv_wide_gemm(cp, rng, monkeypatch, rows, n, c, spatial, oc, k, kw, dtype):
    """Both row heights: 128 ("wide"), and 64 where no tile would give every SM a block (a device of
    10**6 SMs), with the narrower of the two column widths."""
    nd = len(spatial)
    x = rand(rng, (n, c, *spatial), dtype)
    if "activation" in kw:
        x.flat[x.size // 3] = np.nan  # the fused ReLU keeps NaN
    w = rand(rng, (oc, c // kw.get("groups", 1), *k), dtype)
    b = rand(rng, (oc,), dtype)
    launched = []
    typed = _cuda.typed
    monkeypatch.setattr(_cuda, "typed", lambda family, base, dt: launched.append(base) or typed(family, base, dt))
    monkeypatch.setattr(G, "GEMM_TILES", "wide" if rows == 128 else "auto")
    monkeypatch.setattr(_cuda, "sm_count", lambda: 10**6)
    f = getattr(F, f"conv{nd}d")
    ocg = oc // kw.get("groups", 1)
    widths = [bn for bn in (128, 64, 32) if bn < 2 * ocg][:2]
    want = f"conv_gemm_wide_forward_m{rows}n{widths[0] if rows == 128 else widths[-1]}"
    for bias in (b, None):
        launched.clear()
        close(cp, f(*gpu(cp, x, w), gpu(cp, bias), **kw), f(x, w, bias, **kw), dtype)
        assert launched == [want], launched


# (N, C, spatial, OC, kernel, kwargs): stride-1 input gradients with more than 32 input channels per
# group run as the wide forward GEMM of gy with the flipped, transposed weight
WIDE_INPUT_GRAD_SHAPES = [
    (2, 40, (6, 7), 24, (3, 3), dict(padding=1)),
    (1, 72, (5, 9), 16, (3, 3), dict(padding=2, dilation=2)),
    (1, 80, (4, 5, 6), 8, (3, 3, 3), dict(padding=1, groups=2)),
    (2, 36, (40,), 5, (5,), dict(padding=(1,))),                 # padding below the kernel's reach
    (1, 34, (9, 10), 6, (2, 4), dict(padding="same")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,spatial,oc,k,kw", WIDE_INPUT_GRAD_SHAPES)
def test_conv_input_gradient_on_the_wide_gemm(cp, rng, monkeypatch, n, c, spatial, oc, k, kw, dtype):
    nd = len(spatial)
    groups = kw.get("groups", 1)
    x = rand(rng, (n, c, *spatial), dtype)
    w = rand(rng, (oc, c // groups, *k), dtype)
    gy = rand(rng, getattr(F, f"conv{nd}d")(x, w, **kw).shape, dtype)
    launched = []
    typed = _cuda.typed
    monkeypatch.setattr(_cuda, "typed", lambda family, base, dt: launched.append(base) or typed(family, base, dt))
    monkeypatch.setattr(G, "GEMM_TILES", "wide")
    backward = getattr(B, f"conv{nd}d_backward")
    want = backward(gy, x, w, None, output_mask=(True, False, False), **kw)[0]
    got = backward(*gpu(cp, gy, x, w), None, output_mask=(True, False, False), **kw)[0]
    close(cp, got, want, dtype, scale=30.0)
    assert any(name.startswith("conv_gemm_wide_forward") for name in launched), launched
    # the transposed conv's forward is the same kernel, with its bias
    wt = rand(rng, (c, oc // groups, *k), dtype)
    b = rand(rng, (oc,), dtype)
    tkw = {key: v for key, v in kw.items() if key != "padding" or not isinstance(v, str)}
    transposed = getattr(F, f"conv_transpose{nd}d", None) or getattr(E, f"conv_transpose{nd}d")
    close(cp, transposed(*gpu(cp, x, wt, b), **tkw), transposed(x, wt, b, **tkw), dtype, scale=30.0)


def test_conv_wide_gemm_choice(monkeypatch):
    """128-row tiles where they give every SM a block (132 here), the wider first; else 64-row ones; the
    16x16-thread tiles for 16 columns or fewer and past the 31-bit limits."""
    monkeypatch.setattr(_cuda, "sm_count", lambda: 132)
    monkeypatch.setattr(G, "GEMM_TILES", "auto")
    pick = G._wide_tile
    one = (1, 1, 1)
    assert pick((8, 64, 1, 64, 64), (64, 64, 1, 3, 3), (8, 64, 1, 64, 64), (0, 1, 1), one, 1) == (128, 64)  # S3
    assert pick((8, 64, 1, 128, 128), (128, 64, 1, 3, 3), (8, 128, 1, 64, 64), (0, 1, 1), one, 1) == (128, 128)  # S5
    assert pick((8, 128, 1, 32, 32), (256, 128, 1, 1, 1), (8, 256, 1, 32, 32), (0, 0, 0), one, 1) == (128, 64)  # S6
    assert pick((8, 256, 1, 16, 16), (256, 256, 1, 3, 3), (8, 256, 1, 16, 16), (0, 1, 1), one, 1) == (64, 64)  # S4
    assert pick((2, 32, 32, 64, 64), (32, 32, 3, 3, 3), (2, 32, 32, 64, 64), one, one, 1) == (128, 32)  # S9
    assert pick((8, 64, 1, 64, 64), (16, 64, 1, 3, 3), (8, 16, 1, 64, 64), (0, 1, 1), one, 1) is None  # 16 columns
    assert pick((1, 4096, 1, 1024, 1024), (64, 4096, 1, 1, 1), (1, 64, 1, 1024, 1024), (0, 0, 0), one, 1) is None
    # a depth-dilated kernel reaching far into the padding: 2 * 8 * 1024**2 elements, but its last tap lies
    # 2200 planes away (past 31 bits)
    assert pick((1, 2, 8, 1024, 1024), (64, 2, 3, 1, 1), (1, 64, 8, 1024, 1024), (1100, 0, 0), (1100, 1, 1), 1) is None
    monkeypatch.setattr(G, "GEMM_TILES", "tiled")
    assert pick((8, 64, 1, 64, 64), (64, 64, 1, 3, 3), (8, 64, 1, 64, 64), (0, 1, 1), one, 1) is None


def test_conv_unbatched_out_and_strided(cp, rng):
    x = rand(rng, (3, 8, 9), np.float32)
    w = rand(rng, (5, 3, 3, 3), np.float32)
    close(cp, F.conv2d(*gpu(cp, x, w), padding=1), F.conv2d(x, w, padding=1), np.float32)
    big = rand(rng, (2, 3, 8, 18), np.float32)
    out = cp.zeros((2, 5, 8, 9), np.float32)
    r = F.conv2d(gpu(cp, big)[..., ::2], gpu(cp, w), padding=1, out=out)  # a strided view, copied visibly
    assert r is out
    close(cp, out, F.conv2d(big[..., ::2], w, padding=1), np.float32)


def test_conv_weight_gradient_is_deterministic(cp, rng):
    x = rand(rng, (2, 8, 40, 40), np.float32)
    w = rand(rng, (16, 8, 3, 3), np.float32)
    gy = rand(rng, (2, 16, 40, 40), np.float32)
    a = B.conv2d_backward(*gpu(cp, gy, x, w), padding=1, output_mask=(False, True, False))[1]
    b = B.conv2d_backward(*gpu(cp, gy, x, w), padding=1, output_mask=(False, True, False))[1]
    assert np.array_equal(cpu(cp, a), cpu(cp, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose(cp, rng, nd, dtype):
    for _ in range(3):
        groups = int(rng.choice([1, 2]))
        cin, cout_g = groups * int(rng.integers(1, 4)), int(rng.integers(1, 6))
        k = tuple(int(v) for v in rng.integers(1, 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 3, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        padding = tuple(int(rng.integers(0, (d * (kk - 1)) // 2 + 1)) for d, kk in zip(dilation, k))
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        x = rand(rng, (2, cin, *(int(v) for v in rng.integers(2, 6, nd))), dtype)
        w = rand(rng, (cin, cout_g, *k), dtype)
        b = rand(rng, (cout_g * groups,), dtype)
        kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
        f = getattr(E, f"conv_transpose{nd}d")
        y = f(x, w, b, **kw)
        close(cp, getattr(E, f"conv_transpose{nd}d")(*gpu(cp, x, w, b), **kw), y, dtype, what=str(kw))
        gy = rand(rng, y.shape, dtype)
        want = getattr(B, f"conv_transpose{nd}d_backward")(gy, x, w, b, **kw)
        got = getattr(B, f"conv_transpose{nd}d_backward")(*gpu(cp, gy, x, w, b), **kw)
        for g, e in zip(got, want):
            close(cp, g, e, dtype, scale=30.0, what=str(kw))


# ------------------------------------------------------------------ pad


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad(cp, rng, dtype):
    for _ in range(4 * CASES):
        x, p, mode, value = pad_case(rng, dtype)
        y = F.pad(x, p, mode=mode, value=value)
        close(cp, F.pad(gpu(cp, x), p, mode=mode, value=value), y, dtype, scale=1.0, what=f"{mode} {p}")
        gy = rand(rng, y.shape, dtype)
        close(cp, B.pad_backward(gpu(cp, gy), gpu(cp, x), p, mode), B.pad_backward(gy, x, p, mode), dtype,
              what=f"backward {mode} {p}")
    x = rand(rng, (2, 3, 6, 7), dtype)  # a negative constant pad crops
    close(cp, F.pad(gpu(cp, x), (-1, 2, 1, -2)), F.pad(x, (-1, 2, 1, -2)), dtype, scale=1.0)
    gy = rand(rng, F.pad(x, (-1, 2, 1, -2)).shape, dtype)
    close(cp, B.pad_backward(gpu(cp, gy), gpu(cp, x), (-1, 2, 1, -2)), B.pad_backward(gy, x, (-1, 2, 1, -2)), dtype)


# ------------------------------------------------------------------ pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool(cp, rng, nd, dtype):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype)
        f = getattr(F, f"max_pool{nd}d")
        y, idx = f(x, return_indices=True, **kw)
        gy_, gidx = f(gpu(cp, x), return_indices=True, **kw)
        close(cp, gy_, y, dtype, scale=0.0)
        assert np.array_equal(cpu(cp, gidx), idx)
        g = rand(rng, y.shape, dtype)
        want = getattr(B, f"max_pool{nd}d_backward")(g, x, **kw)
        close(cp, getattr(B, f"max_pool{nd}d_backward")(*gpu(cp, g, x), **kw), want, dtype, scale=1.0)
        close(cp, getattr(B, f"max_pool{nd}d_backward")(*gpu(cp, g, x), indices=gpu(cp, idx), **kw), want, dtype,
              scale=1.0)


def test_max_pool_nan_and_odd_indices(cp, rng):
    x = rand(rng, (2, 3, 8, 8), np.float32)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, :2, :2] = 0.5  # ties: the first maximum
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    gy_, gidx = F.max_pool2d(gpu(cp, x), 2, return_indices=True)
    close(cp, gy_, y, np.float32, scale=0.0)
    assert np.array_equal(cpu(cp, gidx), idx)
    g = rand(rng, y.shape, np.float32)
    odd = np.zeros_like(idx)  # in the plane but not in the windows: the per-plane scatter fallback
    close(cp, B.max_pool2d_backward(*gpu(cp, g, x), 2, indices=gpu(cp, odd)),
          B.max_pool2d_backward(g, x, 2, indices=odd), np.float32, scale=1.0)
    with pytest.raises(ValueError, match="indices must lie in"):
        B.max_pool2d_backward(*gpu(cp, g, x), 2, indices=gpu(cp, idx + 1000))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool(cp, rng, nd, dtype):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype, dilated=False)
        f = getattr(F, f"avg_pool{nd}d")
        y = f(x, **kw)
        close(cp, f(gpu(cp, x), **kw), y, dtype, scale=1.0, what=str(kw))
        g = rand(rng, y.shape, dtype)
        close(cp, getattr(B, f"avg_pool{nd}d_backward")(*gpu(cp, g, x), **kw),
              getattr(B, f"avg_pool{nd}d_backward")(g, x, **kw), dtype, scale=1.0, what=str(kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_avg_pool(cp, rng, nd, dtype):
    for _ in range(CASES):
        spatial = tuple(int(v) for v in rng.integers(1, 12 if nd < 3 else 7, nd))
        osz = tuple(int(v) for v in rng.integers(1, 9 if nd < 3 else 6, nd))
        x = rand(rng, (2, 3, *spatial), dtype)
        f = getattr(F, f"adaptive_avg_pool{nd}d")
        y = f(x, osz)
        close(cp, f(gpu(cp, x), osz), y, dtype, scale=1.0)
        g = rand(rng, y.shape, dtype)
        close(cp, getattr(B, f"adaptive_avg_pool{nd}d_backward")(*gpu(cp, g, x), osz),
              getattr(B, f"adaptive_avg_pool{nd}d_backward")(g, x, osz), dtype, scale=1.0)


# ------------------------------------------------------------------ activations, softmax, maxout, linear

ACTS = [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.7}), ("sigmoid", {}),
        ("tanh", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ACTS)
def test_activations(cp, rng, name, kw, dtype):
    x = rand(rng, (3, 4, 5, 7), dtype) * 4
    x[0, 0, 0, :3] = [0.0, np.nan, -np.inf]
    y = getattr(F, name)(x, **kw)
    close(cp, getattr(F, name)(gpu(cp, x), **kw), y, dtype, scale=2.0)
    g = rand(rng, x.shape, dtype)
    bkw = {k: v for k, v in kw.items()}
    close(cp, getattr(B, f"{name}_backward")(*gpu(cp, g, x), **bkw), getattr(B, f"{name}_backward")(g, x, **bkw),
          dtype, scale=2.0)
    if name in ("sigmoid", "tanh"):
        close(cp, getattr(B, f"{name}_backward")(gpu(cp, g), output=gpu(cp, y)),
              getattr(B, f"{name}_backward")(g, output=y), dtype, scale=2.0)
    if name in ("relu", "leaky_relu", "elu"):
        xg = gpu(cp, x)
        assert getattr(F, name)(xg, inplace=True, **kw) is xg
        close(cp, xg, y, dtype, scale=2.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((4, 10), 1), ((3, 300), -1), ((2, 5, 3, 4), 1), ((6, 70), 0),
                                       ((2, 3, 130), 2)])
def test_softmax(cp, rng, shape, dim, dtype):
    x = rand(rng, shape, dtype) * 5
    x.reshape(-1)[:2] = -np.inf
    for log, f in ((False, F.softmax), (True, F.log_softmax)):
        y = f(x, dim)
        close(cp, f(gpu(cp, x), dim), y, dtype, scale=5.0)
        g = rand(rng, shape, dtype)
        bf = B.log_softmax_backward if log else B.softmax_backward
        gf = B.log_softmax_backward if log else B.softmax_backward
        yy = f(rand(rng, shape, dtype), dim)
        close(cp, gf(*gpu(cp, g, yy), dim), bf(g, yy, dim), dtype, scale=5.0)
    huge = np.full(shape, 3.0e38, dtype)  # (x - max) - log(sum): max + log(sum) would drop log(sum)
    want = np.full(shape, -np.log(huge.shape[dim]))
    np.testing.assert_allclose(cp.asnumpy(F.log_softmax(gpu(cp, huge), dim)), want, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout(cp, rng, dtype):
    x = rand(rng, (2, 6, 5, 3), dtype)
    x[0, 1, 0, 0] = np.nan
    x[1, :3, 1, 1] = 0.25  # a tie: the first piece wins
    for dim, pieces in ((1, 3), (-1, 3), (2, 5), (1, 1)):
        y = F.maxout(x, pieces, dim)
        close(cp, F.maxout(gpu(cp, x), pieces, dim), y, dtype, scale=0.0)
        g = rand(rng, y.shape, dtype)
        close(cp, B.maxout_backward(*gpu(cp, g, x), pieces, dim), B.maxout_backward(g, x, pieces, dim), dtype,
              scale=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(cp, rng, dtype):
    x, w, b = rand(rng, (2, 3, 7), dtype), rand(rng, (5, 7), dtype), rand(rng, (5,), dtype)
    y = F.linear(x, w, b)
    close(cp, F.linear(*gpu(cp, x, w, b)), y, dtype)
    close(cp, F.linear(*gpu(cp, x, w)), F.linear(x, w), dtype)
    g = rand(rng, y.shape, dtype)
    for got, want in zip(B.linear_backward(*gpu(cp, g, x, w, b)), B.linear_backward(g, x, w, b)):
        close(cp, got, want, dtype)


# ------------------------------------------------------------------ interpolate, batch norm


INTERP = [(3, "nearest", None), (4, "nearest", None), (5, "nearest-exact", None), (3, "linear", False),
          (4, "bilinear", True), (4, "bilinear", False), (5, "trilinear", False), (4, "area", None)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim,mode,align_corners", INTERP)
def test_interpolate(cp, rng, ndim, mode, align_corners, dtype):
    nd = ndim - 2
    for case in range(3):
        x = rand(rng, (2, 3, *(int(v) for v in rng.integers(2, 8 if nd < 3 else 5, nd))), dtype)
        if case == 0:
            kw = dict(size=tuple(int(v) for v in rng.integers(1, 12 if nd < 3 else 7, nd)))
        else:
            kw = dict(scale_factor=float(rng.choice([0.5, 1.5, 2.0, 2.7])))
        kw.update(mode=mode, align_corners=align_corners)
        y = E.interpolate(x, **kw)
        close(cp, E.interpolate(gpu(cp, x), **kw), y, dtype, scale=2.0, what=str(kw))
        g = rand(rng, y.shape, dtype)
        close(cp, B.interpolate_backward(*gpu(cp, g, x), **kw), B.interpolate_backward(g, x, **kw), dtype,
              scale=5.0, what=str(kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7), (2, 3, 40, 50), (2, 2, 3, 2, 3)])
def test_batch_norm(cp, rng, shape, training, dtype):
    c = shape[1]
    x = rand(rng, shape, dtype) * 3 + 1
    w, b = rand(rng, (c,), dtype), rand(rng, (c,), dtype)
    rm, rv = rand(rng, (c,), dtype), np.abs(rand(rng, (c,), dtype)) + 0.5
    rm_g, rv_g = gpu(cp, rm, rv)
    y = E.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2)
    close(cp, E.batch_norm(gpu(cp, x), rm_g, rv_g, *gpu(cp, w, b), training=training, momentum=0.2), y, dtype)
    close(cp, rm_g, rm, dtype)
    close(cp, rv_g, rv, dtype)
    g = rand(rng, shape, dtype)
    want = B.batch_norm_backward(g, x, rm, rv, w, b, training=training)
    got = B.batch_norm_backward(*gpu(cp, g, x, rm, rv, w, b), training=training)
    for gg, e in zip(got, want):
        close(cp, gg, e, dtype, scale=10.0)


# ------------------------------------------------------------------ DICOM


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32])
def test_dicom_rescale_same_bits(cp, rng, dtype):
    from medconv.dicom.pixels import rescale

    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    stored = (rng.integers(info.min, info.max, (7, 33), endpoint=True).astype(dtype) if info
              else (rng.standard_normal((7, 33)) * 1000).astype(dtype))
    bits = 12 if info and np.dtype(dtype).itemsize >= 2 else None
    for kw in (dict(slope=1.0, intercept=-1024.0), dict(slope=0.37, intercept=3.5, window=(40.0, 400.0)),
               dict(slope=2.0, intercept=0.0, window=(10.0, 1.0)), dict(window="lung", invert=True)):
        want = rescale(stored, bits_stored=bits, **kw)
        got = G.dicom_rescale(gpu(cp, stored), bits_stored=bits, **kw)
        assert np.array_equal(cpu(cp, got), want, equal_nan=True), kw


# ------------------------------------------------------------------ dispatch and errors


def test_results_are_gpu_arrays_and_mixing_is_refused(cp, rng):
    x, w = rand(rng, (2, 3, 6, 6), np.float32), rand(rng, (4, 3, 3, 3), np.float32)
    assert isinstance(F.relu(gpu(cp, x)), cp.ndarray)
    with pytest.raises(TypeError, match="weight is on the CPU but input is on the GPU"):
        F.conv2d(gpu(cp, x), w)
    with pytest.raises(TypeError, match="weight is on the GPU .* but input is on the CPU"):
        F.conv2d(x, gpu(cp, w))
    with pytest.raises(TypeError, match="out is a CPU array but input is on the GPU"):
        F.relu(gpu(cp, x), out=np.empty_like(x))
    with pytest.raises(TypeError, match="out is on the GPU"):
        F.relu(x, out=gpu(cp, x))
    with pytest.raises(TypeError, match="grad_output is a CPU array"):
        B.relu_backward(x, gpu(cp, x))
    with pytest.raises(TypeError, match="dtype int32"):
        F.relu(gpu(cp, x.astype(np.int32)))


def test_backend_info_reports_the_device(cp):
    info = medconv.backend_info()["gpu"]
    assert info is not None and info["devices"] and info["devices"][0]["multiprocessors"] >= 1


# ------------------------------------------------------------------ functional.backward / extra dispatch


def _backward_cases(rng, dtype):
    """(op name, positional arguments, keyword arguments) for every op of functional.backward but dropout."""
    x3, x4, x5 = rand(rng, (1, 2, 7), dtype), rand(rng, (2, 3, 6, 5), dtype), rand(rng, (1, 2, 4, 3, 4), dtype)
    b3, b4 = rand(rng, (3,), dtype), rand(rng, (4,), dtype)
    bn = (rand(rng, (3,), dtype), np.abs(rand(rng, (3,), dtype)) + 0.5, rand(rng, (3,), dtype), rand(rng, (3,), dtype))
    return [
        ("conv1d", (x3, rand(rng, (3, 2, 2), dtype), b3), dict(padding=1, stride=2)),
        ("conv2d", (x4, rand(rng, (4, 3, 3, 3), dtype), b4), dict(padding=1, padding_mode="reflect")),
        ("conv3d", (x5, rand(rng, (2, 2, 2, 2, 2), dtype), None), dict(padding=(1, 0, 1))),
        ("conv_transpose1d", (x3, rand(rng, (2, 3, 3), dtype), b3), dict(stride=2)),
        ("conv_transpose2d", (x4, rand(rng, (3, 2, 2, 3), dtype), None), dict(stride=2, padding=1, output_padding=1)),
        ("conv_transpose3d", (x5, rand(rng, (2, 1, 2, 2, 2), dtype), None), dict(groups=2)),
        ("max_pool1d", (x3,), dict(kernel_size=2)),
        ("max_pool2d", (x4,), dict(kernel_size=3, stride=2, padding=1)),
        ("max_pool3d", (x5,), dict(kernel_size=2, ceil_mode=True)),
        ("avg_pool1d", (x3,), dict(kernel_size=3, padding=1)),
        ("avg_pool2d", (x4,), dict(kernel_size=2, padding=1, count_include_pad=False)),
        ("avg_pool3d", (x5,), dict(kernel_size=2)),
        ("adaptive_avg_pool1d", (x3,), dict(output_size=3)),
        ("adaptive_avg_pool2d", (x4,), dict(output_size=(4, 2))),
        ("adaptive_avg_pool3d", (x5,), dict(output_size=2)),
        ("relu", (x4,), {}), ("leaky_relu", (x4,), dict(negative_slope=0.2)), ("elu", (x4,), dict(alpha=0.5)),
        ("sigmoid", (x4,), {}), ("tanh", (x4,), {}), ("gelu", (x4,), dict(approximate="tanh")),
        ("softmax", (x4,), dict(dim=1)), ("log_softmax", (x4,), dict(dim=-1)),
        ("maxout", (x4,), dict(pieces=3, dim=1)),
        ("linear", (rand(rng, (2, 5, 7), dtype), rand(rng, (4, 7), dtype), b4), {}),
        ("pad", (x4,), dict(pad=(1, 2, 0, 1), mode="replicate")),
        ("interpolate", (x4,), dict(scale_factor=1.5, mode="bilinear", align_corners=False)),
        ("batch_norm", (x4, *bn), dict(training=True, momentum=0.3)),
    ]


def test_backward_and_extra_route_gpu_arrays(cp, rng):
    """functional.backward and functional.extra take GPU arrays themselves: GPU arrays out, the CPU
    path's values (running statistics updated in place on the GPU too)."""
    dtype = np.float32
    for name, args, kw in _backward_cases(rng, dtype):
        gargs = tuple(gpu(cp, a) if isinstance(a, np.ndarray) else a for a in args)
        forward = getattr(E, name, None) or getattr(F, name)
        y, yg = forward(*args, **kw), forward(*gargs, **kw)
        close(cp, yg, y, dtype, what=name)
        for a, ga in zip(args, gargs):  # batch_norm's running statistics
            if isinstance(a, np.ndarray):
                close(cp, ga, a, dtype, what=name)
        g = rand(rng, y.shape, dtype)
        first, gfirst = (y, yg) if name in ("softmax", "log_softmax") else (args[0], gargs[0])
        want = getattr(B, f"{name}_backward")(g, first, *args[1:], **kw)
        got = getattr(B, f"{name}_backward")(gpu(cp, g), gfirst, *gargs[1:], **kw)
        want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        for gg, ww in zip(got, want):
            close(cp, gg, ww, dtype, scale=30.0, what=f"{name}_backward")


def test_dropout_on_gpu_draws_the_cpu_mask(cp, rng):
    x = rand(rng, (3, 4, 5), np.float32)
    y, keep = E.native_dropout(x, 0.3, generator=np.random.default_rng(7))
    yg, keepg = E.native_dropout(gpu(cp, x), 0.3, generator=np.random.default_rng(7))
    assert isinstance(keepg, cp.ndarray) and np.array_equal(cpu(cp, keepg), keep)
    close(cp, yg, y, np.float32, scale=0.0)
    close(cp, E.dropout(gpu(cp, x), 0.3, generator=np.random.default_rng(7)), y, np.float32, scale=0.0)
    g = rand(rng, x.shape, np.float32)
    close(cp, B.dropout_backward(gpu(cp, g), keepg, 0.3), B.dropout_backward(g, keep, 0.3), np.float32, scale=0.0)
    xg = gpu(cp, x)
    assert E.dropout(xg, 0.3, inplace=True, generator=np.random.default_rng(7)) is xg
    close(cp, xg, y, np.float32, scale=0.0)
    with pytest.raises(TypeError, match="mask is a CPU array"):
        B.dropout_backward(gpu(cp, g), keep, 0.3)


def test_backward_and_extra_refuse_mixing(cp, rng):
    x, w = rand(rng, (2, 3, 6, 6), np.float32), rand(rng, (4, 3, 3, 3), np.float32)
    gy = rand(rng, (2, 4, 4, 4), np.float32)
    with pytest.raises(TypeError, match="input is a CPU array"):
        B.conv2d_backward(gpu(cp, gy), x, w)
    with pytest.raises(TypeError, match="grad_output is a CPU array"):
        B.conv2d_backward(gy, gpu(cp, x), gpu(cp, w))
    with pytest.raises(TypeError, match="weight is a CPU array"):
        B.conv2d_backward(*gpu(cp, gy, x), w)
    with pytest.raises(TypeError, match="weight is on the GPU .* but input is on the CPU"):
        B.conv2d_backward(gy, x, gpu(cp, w))
    with pytest.raises(TypeError, match="input is a CPU array"):
        B.relu_backward(gpu(cp, x), x)
    with pytest.raises(TypeError, match="weight is a CPU array"):
        E.conv_transpose2d(gpu(cp, x), rand(rng, (3, 2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="running_mean is a CPU array"):
        E.batch_norm(gpu(cp, x), np.zeros(3, np.float32), gpu(cp, np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="out is a CPU array"):
        E.interpolate(gpu(cp, x), scale_factor=2, out=np.empty((2, 3, 12, 12), np.float32))


def test_backward_options_on_gpu_match_the_cpu(cp, rng):
    """The branches of functional.backward / extra beyond the default arguments, on both devices:
    output_mask, unbatched inputs, shapes for inputs, saved and running statistics, out=."""
    dtype = np.float32
    x, w, b = rand(rng, (2, 3, 6, 5), dtype), rand(rng, (4, 3, 3, 3), dtype), rand(rng, (4,), dtype)
    gy = rand(rng, (2, 4, 6, 5), dtype)
    for mask in ((False, True, False), (True, False, True), (False, False, True)):
        for got, want in zip(B.conv2d_backward(*gpu(cp, gy, x, w, b), padding=1, output_mask=mask),
                             B.conv2d_backward(gy, x, w, b, padding=1, output_mask=mask)):
            close(cp, got, want, dtype, scale=30.0, what=str(mask))
    for got, want in zip(B.conv2d_backward(*gpu(cp, gy[0], x[0], w), padding=1, padding_mode="circular"),
                         B.conv2d_backward(gy[0], x[0], w, padding=1, padding_mode="circular")):
        close(cp, got, want, dtype, scale=30.0, what="unbatched circular")
    wt = rand(rng, (3, 2, 2, 2), dtype)
    yt = E.conv_transpose2d(x[0], wt, stride=2)
    close(cp, E.conv_transpose2d(*gpu(cp, x[0], wt), stride=2), yt, dtype)
    gt = rand(rng, yt.shape, dtype)
    for got, want in zip(B.conv_transpose2d_backward(*gpu(cp, gt, x[0], wt), stride=2),
                         B.conv_transpose2d_backward(gt, x[0], wt, stride=2)):
        close(cp, got, want, dtype, scale=30.0, what="unbatched transposed")
    xl, wl, bl = rand(rng, (3, 7), dtype), rand(rng, (5, 7), dtype), rand(rng, (5,), dtype)
    gl = rand(rng, (3, 5), dtype)
    for mask in ((False, False, True), (True, False, False), (False, True, False)):
        for got, want in zip(B.linear_backward(*gpu(cp, gl, xl, wl, bl), output_mask=mask),
                             B.linear_backward(gl, xl, wl, bl, output_mask=mask)):
            close(cp, got, want, dtype, what=f"linear {mask}")
    gp = rand(rng, (2, 3, 7, 8), dtype)
    close(cp, B.pad_backward(gpu(cp, gp), x.shape, (1, 2, 0, 1), "reflect"),
          B.pad_backward(gp, x.shape, (1, 2, 0, 1), "reflect"), dtype)
    gi = rand(rng, (2, 3, 9, 10), dtype)
    for mode in ("bilinear", "area"):
        close(cp, B.interpolate_backward(gpu(cp, gi), x.shape, size=(9, 10), mode=mode),
              B.interpolate_backward(gi, x.shape, size=(9, 10), mode=mode), dtype, scale=5.0, what=mode)
    out = cp.zeros((2, 3, 9, 10), dtype)
    assert E.interpolate(gpu(cp, x), size=(9, 10), mode="bilinear", out=out) is out
    close(cp, out, E.interpolate(x, size=(9, 10), mode="bilinear"), dtype, scale=2.0)
    y, idx = F.max_pool2d(x[0], 2, return_indices=True)
    g = rand(rng, y.shape, dtype)
    close(cp, B.max_pool2d_backward(*gpu(cp, g, x[0]), 2, indices=gpu(cp, idx.astype(np.int32))),
          B.max_pool2d_backward(g, x[0], 2, indices=idx), dtype, scale=0.0)
    w3, b3 = rand(rng, (3,), dtype), rand(rng, (3,), dtype)
    rm, rv = rand(rng, (3,), dtype), np.abs(rand(rng, (3,), dtype)) + 0.5
    _, mean, invstd = E._batch_norm(x, None, None, w3, b3, True, 0.1, 1e-5, None)
    gx = rand(rng, x.shape, dtype)
    cases = [dict(training=False), dict(training=True, save_mean=mean, save_invstd=invstd),
             dict(training=True, output_mask=(False, True, True))]
    for kw in cases:
        gkw = {k: gpu(cp, v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        got = B.batch_norm_backward(*gpu(cp, gx, x, rm, rv, w3), None, **gkw)
        want = B.batch_norm_backward(gx, x, rm, rv, w3, None, **kw)
        for gg, ww in zip(got, want):
            close(cp, gg, ww, dtype, what=str(sorted(kw)))
    close(cp, E.batch_norm(*gpu(cp, x, rm, rv), eps=1e-3), E.batch_norm(x, rm, rv, eps=1e-3), dtype)
    keep = rng.random(x.shape) > 0.3
    close(cp, B.dropout_backward(gpu(cp, gx), gpu(cp, keep.astype(np.uint8)), 0.3),
          B.dropout_backward(gx, keep.astype(np.uint8), 0.3), dtype, scale=0.0)


def test_backward_names_the_argument_on_the_other_device(cp, rng):
    x = rand(rng, (2, 3, 6, 6), np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    g = rand(rng, y.shape, np.float32)
    with pytest.raises(TypeError, match="indices is a CPU array .* but grad_output is on the GPU"):
        B.max_pool2d_backward(*gpu(cp, g, x), 2, indices=idx)
    with pytest.raises(TypeError, match="output is a CPU array .* but grad_output is on the GPU"):
        B.sigmoid_backward(gpu(cp, x), output=x)
    with pytest.raises(TypeError, match="save_mean is a CPU array .* but input is on the GPU"):
        B.batch_norm_backward(*gpu(cp, x, x), None, None, save_mean=np.zeros(3, np.float32),
                              save_invstd=gpu(cp, np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="save_invstd is on the GPU .* but input is on the CPU"):
        B.batch_norm_backward(x, x, None, None, save_mean=np.zeros(3, np.float32),
                              save_invstd=gpu(cp, np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="weight is a CPU array .* but grad_output is on the GPU"):
        B.linear_backward(*gpu(cp, x, x), rand(rng, (6, 6), np.float32))
    with pytest.raises(TypeError, match="grad_output is a CPU array .* but the call is on the GPU"):
        B.dropout_backward(x, gpu(cp, np.ones(x.shape, bool)))


# ------------------------------------------------------------------ medconv.nn and optim on the GPU


def _small_net(nn):
    nn.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3))


def test_model_to_cuda_trains_like_the_cpu(cp, rng, tmp_path):
    import medconv.nn as nn
    import medconv.optim as optim

    x = rand(rng, (8, 1, 6, 6), np.float32)
    y = rng.integers(0, 3, 8)
    model_cpu, model_gpu = _small_net(nn), _small_net(nn).to("cuda")
    assert model_gpu.device == "cuda:0" and model_cpu.device == "cpu"
    for p in model_gpu.parameters():
        assert isinstance(p, nn.Parameter) and isinstance(p, cp.ndarray) and p.grad is None
    assert isinstance(model_gpu[1].running_mean, cp.ndarray)
    histories = []
    for model in (model_cpu, model_gpu):
        nn.manual_seed(11)  # the same dropout masks on both devices
        opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
        histories.append(model.fit(x, y, epochs=1, batch_size=4, optimizer=opt, seed=0, verbose=0))
    losses = [np.array(h["loss"], dtype=np.float32) for h in histories]
    assert_close(losses[1], losses[0], np.float32, scale=10.0)
    assert histories[1]["accuracy"] == histories[0]["accuracy"]
    for p in model_gpu.parameters():
        assert isinstance(p.grad, cp.ndarray)
    want = model_cpu.state_dict()
    got = model_gpu.state_dict()  # numpy copies, for saving
    assert all(isinstance(v, np.ndarray) for v in got.values())
    for k in want:
        assert_close(got[k], want[k], scale=100.0, what=k)
    proba = model_cpu.predict_proba(x)
    assert_close(model_gpu.predict_proba(x), proba, np.float32, scale=10.0)  # numpy x: numpy out
    assert isinstance(model_gpu.predict(gpu(cp, x)), cp.ndarray)                # CuPy x: CuPy out
    with pytest.raises(TypeError, match="on the CPU but input is on the GPU|CPU array"):
        model_cpu(gpu(cp, x))
    nn.save(model_gpu, tmp_path / "gpu.safetensors")  # saving writes CPU arrays
    loaded = nn.load(tmp_path / "gpu.safetensors")
    assert loaded.device == "cpu"
    for k, v in loaded.state_dict().items():
        assert np.array_equal(v, got[k])
    skip = nn.SkipConcat(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()))  # a U-Net's skip connection
    want_y = skip(x)
    want_g = skip.backward(np.ones_like(want_y))
    skip.cuda()
    close(cp, skip(gpu(cp, x)), want_y, np.float32)
    close(cp, skip.backward(cp.ones(want_y.shape, np.float32)), want_g, np.float32)
    back = model_gpu.to("cpu", dtype=np.float64)
    assert back is model_gpu and back.device == "cpu" and back.dtype == np.float64
    assert isinstance(back[0].weight, nn.Parameter) and isinstance(back[0].weight, np.ndarray)
    assert np.array_equal(back[0].weight, got["0.weight"].astype(np.float64))


def test_losses_and_optimizers_on_gpu(cp, rng):
    import medconv.nn as nn
    import medconv.optim as optim

    x = rand(rng, (4, 3, 5), np.float32)
    labels = rng.integers(0, 3, (4, 5))
    labels[0, 0] = -100
    probs = np.abs(rand(rng, x.shape, np.float32))
    cases = [
        (nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5]), label_smoothing=0.1), labels),
        (nn.CrossEntropyLoss(reduction="none"), labels),
        (nn.CrossEntropyLoss(), probs / probs.sum(axis=1, keepdims=True)),
        (nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 1.0, 1.0, 1.0, 0.5])), (probs > 0.5).astype(np.float32)),
        (nn.MSELoss(reduction="sum"), probs),
        (nn.DiceLoss(softmax=True, to_onehot_y=True), labels.clip(0)[:, None]),
        (nn.DiceLoss(sigmoid=True, reduction="none", batch=True), probs),
    ]
    for loss, target in cases:
        want = loss(x, target)
        gw = loss.backward()
        got = loss(*gpu(cp, x, target))
        assert isinstance(got, cp.ndarray)
        close(cp, got, np.asarray(want), np.float32, what=repr(loss))
        close(cp, loss.backward(), gw, np.float32, what=repr(loss))
    with pytest.raises(TypeError, match="target is on the CPU but input is on the GPU"):
        nn.MSELoss()(gpu(cp, x), x)
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                 lambda ps: optim.Adam(ps, lr=0.1, amsgrad=True),
                 lambda ps: optim.AdamW(ps, lr=0.1)):
        p_cpu = nn.Parameter(x)
        p_gpu = nn.Parameter(gpu(cp, x))
        assert isinstance(p_gpu, nn.Parameter) and isinstance(p_gpu, cp.ndarray)
        o_cpu, o_gpu = make([p_cpu]), make([p_gpu])
        for step in range(2):
            g = rand(rng, x.shape, np.float32)
            p_cpu.grad, p_gpu.grad = g, gpu(cp, g)
            o_cpu.step()
            o_gpu.step()
        close(cp, p_gpu, p_cpu.view(np.ndarray), np.float32)
    p = nn.Parameter(gpu(cp, x))
    p.grad = x
    with pytest.raises(TypeError, match="a gradient is on the CPU but its parameter is on the GPU"):
        optim.SGD([p], lr=0.1).step()


def test_torch_cuda_tensors_through_backward_extra_and_nn(cp, rng):
    """torch CUDA tensors go through DLPack without a copy (real GPUs only: the emulation reads no DLPack)."""
    if cp.__version__ == "emulated":
        pytest.skip("the emulation reads no DLPack: needs a real GPU")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA")
    import medconv.nn as nn

    x = rand(rng, (4, 1, 6, 6), np.float32)
    xt = torch.from_numpy(x).cuda()
    y = E.interpolate(xt, scale_factor=2, mode="bilinear")
    assert isinstance(y, torch.Tensor) and y.is_cuda
    assert_close(y.cpu().numpy(), E.interpolate(x, scale_factor=2, mode="bilinear"), np.float32)
    g = B.relu_backward(torch.ones_like(xt), xt)
    assert isinstance(g, torch.Tensor) and g.is_cuda
    model = _small_net(nn).eval().to("cuda")
    out = model(xt)
    assert isinstance(out, torch.Tensor) and out.is_cuda
    assert_close(out.cpu().numpy(), _small_net(nn).eval()(x), np.float32, scale=10.0)
    model.train()
    loss = nn.CrossEntropyLoss()
    value = loss(model(xt), torch.from_numpy(rng.integers(0, 3, 4)).cuda())
    assert isinstance(value, cp.ndarray)
    model.backward(loss.backward())
    assert all(isinstance(p.grad, cp.ndarray) for p in model.parameters())


# ------------------------------------------------------------------ DICOM on the GPU


def test_dicom_rescale_and_read_on_gpu(cp, rng):
    import medconv.dicom as md
    from test_dicom_fixtures import sample_file

    stored = rng.integers(-2000, 3000, (5, 31)).astype(np.int16)
    want = md.rescale(stored, 0.5, -1024.0, bits_stored=12, window=(40.0, 400.0))
    out = cp.empty(stored.shape, np.float32)
    got = md.rescale(stored, 0.5, -1024.0, bits_stored=12, window=(40.0, 400.0), out=out)  # host stored
    assert got is out and np.array_equal(cpu(cp, out), want)
    got = md.rescale(gpu(cp, stored), 0.5, -1024.0, bits_stored=12, window=(40.0, 400.0))
    assert np.array_equal(cpu(cp, got), want)
    with pytest.raises(TypeError, match="out is a CPU array"):
        md.rescale(gpu(cp, stored), out=np.empty(stored.shape, np.float32))
    with pytest.raises(TypeError, match="got float64"):
        md.rescale(stored.astype(np.float64), out=out)
    path = sample_file("CT_small.dcm")
    image = md.read(path, device="cuda", window="lung")
    assert isinstance(image.pixels, cp.ndarray)
    assert np.array_equal(cpu(cp, image.pixels), md.read(path, window="lung").pixels)
    with pytest.raises(ValueError, match="device must be None, 'cpu', 'cuda' or 'cuda:N'"):
        md.read(path, device="gpu")
