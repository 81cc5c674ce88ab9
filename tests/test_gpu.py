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
        got = getattr(G, f"conv{nd}d_backward")(*gpu(cp, gy, x, w), gpu(cp, b), **kw)
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
    got = getattr(G, f"conv{nd}d_backward")(*gpu(cp, gy, x, w, b), **kw)
    for g, e, name in zip(got, want, ("grad_input", "grad_weight", "grad_bias")):
        close(cp, g, e, dtype, scale=30.0, what=name)


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
    a = G.conv2d_backward(*gpu(cp, gy, x, w), padding=1, output_mask=(False, True, False))[1]
    b = G.conv2d_backward(*gpu(cp, gy, x, w), padding=1, output_mask=(False, True, False))[1]
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
        close(cp, getattr(G, f"conv_transpose{nd}d")(*gpu(cp, x, w, b), **kw), y, dtype, what=str(kw))
        gy = rand(rng, y.shape, dtype)
        want = getattr(B, f"conv_transpose{nd}d_backward")(gy, x, w, b, **kw)
        got = getattr(G, f"conv_transpose{nd}d_backward")(*gpu(cp, gy, x, w, b), **kw)
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
        close(cp, G.pad_backward(gpu(cp, gy), gpu(cp, x), p, mode), B.pad_backward(gy, x, p, mode), dtype,
              what=f"backward {mode} {p}")
    x = rand(rng, (2, 3, 6, 7), dtype)  # a negative constant pad crops
    close(cp, F.pad(gpu(cp, x), (-1, 2, 1, -2)), F.pad(x, (-1, 2, 1, -2)), dtype, scale=1.0)
    gy = rand(rng, F.pad(x, (-1, 2, 1, -2)).shape, dtype)
    close(cp, G.pad_backward(gpu(cp, gy), gpu(cp, x), (-1, 2, 1, -2)), B.pad_backward(gy, x, (-1, 2, 1, -2)), dtype)


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
        close(cp, getattr(G, f"max_pool{nd}d_backward")(*gpu(cp, g, x), **kw), want, dtype, scale=1.0)
        close(cp, getattr(G, f"max_pool{nd}d_backward")(*gpu(cp, g, x), indices=gpu(cp, idx), **kw), want, dtype,
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
    close(cp, G.max_pool2d_backward(*gpu(cp, g, x), 2, indices=gpu(cp, odd)),
          B.max_pool2d_backward(g, x, 2, indices=odd), np.float32, scale=1.0)
    with pytest.raises(ValueError, match="indices must lie in"):
        G.max_pool2d_backward(*gpu(cp, g, x), 2, indices=gpu(cp, idx + 1000))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool(cp, rng, nd, dtype):
    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype, dilated=False)
        f = getattr(F, f"avg_pool{nd}d")
        y = f(x, **kw)
        close(cp, f(gpu(cp, x), **kw), y, dtype, scale=1.0, what=str(kw))
        g = rand(rng, y.shape, dtype)
        close(cp, getattr(G, f"avg_pool{nd}d_backward")(*gpu(cp, g, x), **kw),
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
        close(cp, getattr(G, f"adaptive_avg_pool{nd}d_backward")(*gpu(cp, g, x), osz),
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
    close(cp, getattr(G, f"{name}_backward")(*gpu(cp, g, x), **bkw), getattr(B, f"{name}_backward")(g, x, **bkw),
          dtype, scale=2.0)
    if name in ("sigmoid", "tanh"):
        close(cp, getattr(G, f"{name}_backward")(gpu(cp, g), output=gpu(cp, y)),
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
        gf = G.log_softmax_backward if log else G.softmax_backward
        yy = f(rand(rng, shape, dtype), dim)
        close(cp, gf(*gpu(cp, g, yy), dim), bf(g, yy, dim), dtype, scale=5.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout(cp, rng, dtype):
    x = rand(rng, (2, 6, 5, 3), dtype)
    x[0, 1, 0, 0] = np.nan
    x[1, :3, 1, 1] = 0.25  # a tie: the first piece wins
    for dim, pieces in ((1, 3), (-1, 3), (2, 5), (1, 1)):
        y = F.maxout(x, pieces, dim)
        close(cp, F.maxout(gpu(cp, x), pieces, dim), y, dtype, scale=0.0)
        g = rand(rng, y.shape, dtype)
        close(cp, G.maxout_backward(*gpu(cp, g, x), pieces, dim), B.maxout_backward(g, x, pieces, dim), dtype,
              scale=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(cp, rng, dtype):
    x, w, b = rand(rng, (2, 3, 7), dtype), rand(rng, (5, 7), dtype), rand(rng, (5,), dtype)
    y = F.linear(x, w, b)
    close(cp, F.linear(*gpu(cp, x, w, b)), y, dtype)
    close(cp, F.linear(*gpu(cp, x, w)), F.linear(x, w), dtype)
    g = rand(rng, y.shape, dtype)
    for got, want in zip(G.linear_backward(*gpu(cp, g, x, w, b)), B.linear_backward(g, x, w, b)):
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
        close(cp, G.interpolate(gpu(cp, x), **kw), y, dtype, scale=2.0, what=str(kw))
        g = rand(rng, y.shape, dtype)
        close(cp, G.interpolate_backward(*gpu(cp, g, x), **kw), B.interpolate_backward(g, x, **kw), dtype,
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
    close(cp, G.batch_norm(gpu(cp, x), rm_g, rv_g, *gpu(cp, w, b), training=training, momentum=0.2), y, dtype)
    close(cp, rm_g, rm, dtype)
    close(cp, rv_g, rv, dtype)
    g = rand(rng, shape, dtype)
    want = B.batch_norm_backward(g, x, rm, rv, w, b, training=training)
    got = G.batch_norm_backward(*gpu(cp, g, x, rm, rv, w, b), training=training)
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
        G.relu_backward(x, gpu(cp, x))
    with pytest.raises(TypeError, match="dtype int32"):
        F.relu(gpu(cp, x.astype(np.int32)))


def test_backend_info_reports_the_device(cp):
    info = medconv.backend_info()["gpu"]
    assert info is not None and info["devices"] and info["devices"][0]["multiprocessors"] >= 1
