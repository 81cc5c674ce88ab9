"""`<op>_backward` against torch autograd on random shapes and arguments, and against finite
differences for a few; argument errors."""

import warnings

import numpy as np
import pytest

import medconv
import medconv.functional as F
import medconv.functional.backward as B
import medconv.functional.extra as E
from conftest import DTYPES, assert_close, conv_case, pool_case, rand

CASES = 8


def torch_grads(torch, fn, arrays, grad_output, needs=None):
    """Runs fn on tensors made from `arrays` (those with needs[i] True require grad), back-propagates
    grad_output; returns (output, [grad of each array or None])."""
    needs = needs or [True] * len(arrays)
    ts = [None if a is None else torch.tensor(np.ascontiguousarray(a), requires_grad=bool(n) and a.dtype.kind == "f")
          for a, n in zip(arrays, needs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = fn(*ts)
    if grad_output is None:
        return y.detach().numpy(), None
    y.backward(torch.tensor(np.ascontiguousarray(grad_output)))
    return y.detach().numpy(), [None if t is None or t.grad is None else t.grad.numpy() for t in ts]


def _tol(dtype):
    return 1.0 if dtype == np.float64 else 20.0


def finite_difference(f, x, gy, eps=1e-6):
    """sum(gy * f(x)) differentiated by central differences, float64."""
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = np.sum(gy * f(x))
        flat[i] = old - eps
        lo = np.sum(gy * f(x))
        flat[i] = old
        g.reshape(-1)[i] = (hi - lo) / (2 * eps)
    return g


# ------------------------------------------------------------------------ convolution


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_backward(torch, rng, isa, nd, dtype):
    for _ in range(CASES):
        x, w, b, kw = conv_case(rng, nd, dtype)
        y = getattr(F, f"conv{nd}d")(x, w, b, **kw)
        gy = rand(rng, y.shape, dtype)
        mode = kw["padding_mode"]
        cls = getattr(torch.nn, f"Conv{nd}d")

        def fn(tx, tw, tb):
            m = cls(x.shape[1], w.shape[0], w.shape[2:], stride=kw["stride"], padding=kw["padding"],
                    dilation=kw["dilation"], groups=kw["groups"], bias=False, padding_mode=mode)
            return m._conv_forward(tx, tw, tb)

        _, (tgx, tgw, tgb) = torch_grads(torch, fn, [x, w, b], gy)
        gx, gw, gb = getattr(B, f"conv{nd}d_backward")(gy, x, w, b, **kw)
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(gx, tgx, dtype=dtype, scale=_tol(dtype), what="grad_input " + what)
        assert_close(gw, tgw, dtype=dtype, scale=_tol(dtype), what="grad_weight " + what)
        if b is None:
            assert gb is None
        else:
            assert_close(gb, tgb, dtype=dtype, scale=_tol(dtype), what="grad_bias " + what)


def test_conv_backward_unbatched_mask_and_torch_in(torch, rng):
    x, w, b, kw = conv_case(rng, 2, np.float64, n=1)
    y = F.conv2d(x, w, b, **kw)
    gy = rand(rng, y.shape, np.float64)
    full = B.conv2d_backward(gy, x, w, b, **kw)
    gx, gw, gb = B.conv2d_backward(gy[0], x[0], w, b, **kw)
    assert_close(gx, full[0][0])
    assert_close(gw, full[1])
    gx, gw, gb = B.conv2d_backward(torch.from_numpy(gy), x, w, None, **kw, output_mask=(True, False, True))
    assert isinstance(gx, torch.Tensor) and gw is None and gb is None
    assert_close(gx, full[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_of_large_planes_is_the_float64_sum(rng, dtype):
    # channels of 2^20 gradients (some cancelling between images): within a rounding of the exact
    # sum, plus float64's own error over 2^20 terms (1e-13 of the sum of |gy|), where one float32
    # running sum was off by ~1e-4 of it; the same bits at any thread count
    gy = (rng.uniform(0.05, 0.15, (2, 3, 512, 1024)) * rng.choice([1.0, -1.0], (2, 3, 1, 1))).astype(dtype)
    x = rng.standard_normal((2, 4, 512, 1024)).astype(dtype)
    w = rng.standard_normal((3, 4, 1, 1)).astype(dtype)
    want = gy.astype(np.float64).sum(axis=(0, 2, 3))
    before = medconv.get_num_threads()
    try:
        got = []
        for n in (1, 2, 3):
            medconv.set_num_threads(n)
            got.append(B.conv2d_backward(gy, x, w, np.zeros(3, dtype), output_mask=(False, False, True))[2])
    finally:
        medconv.set_num_threads(before)
    bound = 2 * np.finfo(dtype).eps * np.abs(want) + 1e-13 * np.abs(gy).astype(np.float64).sum(axis=(0, 2, 3))
    assert np.all(np.abs(got[0] - want) <= bound), (got[0], want)
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])


def test_conv_backward_finite_difference(rng):
    x = rng.standard_normal((1, 2, 5, 4))
    w = rng.standard_normal((3, 2, 2, 3))
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2), padding_mode="reflect")
    gy = rng.standard_normal(F.conv2d(x, w, **kw).shape)
    gx, gw, _ = B.conv2d_backward(gy, x, w, **kw)
    assert_close(gx, finite_difference(lambda a: F.conv2d(a, w, **kw), x.copy(), gy), scale=1e4)
    assert_close(gw, finite_difference(lambda a: F.conv2d(x, a, **kw), w.copy(), gy), scale=1e4)


def test_conv_backward_deterministic_across_threads(rng):
    x = rand(rng, (3, 6, 17, 15), np.float32)
    w = rand(rng, (8, 3, 3, 3), np.float32)
    gy = rand(rng, F.conv2d(x, w, padding=1, groups=2).shape, np.float32)
    before = medconv.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            medconv.set_num_threads(n)
            results.append(B.conv2d_backward(gy, x, w, w[:, 0, 0, 0], padding=1, groups=2))
    finally:
        medconv.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose(torch, rng, nd, dtype):
    import torch.nn.functional as TF

    for _ in range(CASES):
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 3))
        k = tuple(int(a) for a in rng.integers(1, 4, nd))
        stride = tuple(int(a) for a in rng.integers(1, 4, nd))
        dilation = tuple(int(a) for a in rng.integers(1, 3, nd))
        padding = tuple(int(rng.integers(0, d * (kk - 1) + 1)) for d, kk in zip(dilation, k))
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        size = tuple(int(a) for a in rng.integers(1, {1: 7, 2: 5, 3: 4}[nd], nd))
        x = rand(rng, (int(rng.integers(1, 3)), cin) + size, dtype)
        w = rand(rng, (cin, cout // groups) + k, dtype)
        b = rand(rng, (cout,), dtype) if rng.random() < 0.7 else None
        kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
        try:
            y = getattr(E, f"conv_transpose{nd}d")(x, w, b, **kw)
        except ValueError:  # output too small for this random combination
            continue
        gy = rand(rng, y.shape, dtype)
        ty, (tgx, tgw, tgb) = torch_grads(torch, lambda a, c, d: getattr(TF, f"conv_transpose{nd}d")(a, c, d, **kw),
                                          [x, w, b], gy)
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(y, ty, dtype=dtype, scale=_tol(dtype), what="forward " + what)
        gx, gw, gb = getattr(B, f"conv_transpose{nd}d_backward")(gy, x, w, b, **kw)
        assert_close(gx, tgx, dtype=dtype, scale=_tol(dtype), what="grad_input " + what)
        assert_close(gw, tgw, dtype=dtype, scale=_tol(dtype), what="grad_weight " + what)
        if b is not None:
            assert_close(gb, tgb, dtype=dtype, scale=_tol(dtype), what="grad_bias " + what)


def test_conv_transpose_errors(rng):
    x, w = rand(rng, (1, 4, 5, 5), np.float32), rand(rng, (4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        E.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="expects 4 input channels"):
        E.conv_transpose2d(x[:, :3], w)
    with pytest.raises(ValueError, match="divisible by groups"):
        E.conv_transpose2d(x, w, groups=3)
    with pytest.raises(ValueError, match="grad_output has shape"):
        B.conv_transpose2d_backward(np.zeros((1, 2, 3, 3), np.float32), x, w)


# ------------------------------------------------------------------------ pad and pooling


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_backward(torch, rng, mode):
    import torch.nn.functional as TF

    from conftest import pad_case

    for _ in range(CASES):
        x, pad, mode_, value = pad_case(rng, np.float64, modes=(mode,))
        if mode != "constant" and x.ndim - len(pad) // 2 not in (1, 2):
            continue  # torch pads non-constant modes only on batched or unbatched inputs
        y = F.pad(x, pad, mode, value)
        gy = rand(rng, y.shape, np.float64)
        _, (tgx,) = torch_grads(torch, lambda a: TF.pad(a, pad, mode, value if mode == "constant" else None), [x], gy)
        assert_close(B.pad_backward(gy, x, pad, mode), tgx, what=f"{x.shape} {pad}")
        assert_close(B.pad_backward(gy, x.shape, pad, mode), tgx)


def test_pad_backward_negative_crop(torch, rng):
    x = rand(rng, (2, 5, 6), np.float64)
    pad = (-1, 2, 1, -2)
    gy = rand(rng, F.pad(x, pad).shape, np.float64)
    import torch.nn.functional as TF

    _, (tgx,) = torch_grads(torch, lambda a: TF.pad(a, pad), [x], gy)
    assert_close(B.pad_backward(gy, x, pad), tgx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_backward(torch, rng, nd, dtype):
    import torch.nn.functional as TF

    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype, dilated=True)
        y, idx = getattr(F, f"max_pool{nd}d")(x, **kw, return_indices=True)
        gy = rand(rng, y.shape, dtype)
        _, (tgx,) = torch_grads(torch, lambda a: getattr(TF, f"max_pool{nd}d")(a, **kw), [x], gy)
        fn = getattr(B, f"max_pool{nd}d_backward")
        assert_close(fn(gy, x, **kw), tgx, dtype=dtype, what=f"{x.shape} {kw}")
        assert_close(fn(gy, x, **kw, indices=idx), tgx, dtype=dtype)


def test_max_pool_backward_ties_and_bad_indices(rng):
    x = np.zeros((1, 1, 4, 4))
    g = B.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 2, stride=1)
    assert np.array_equal(g[0, 0], np.pad(np.ones((3, 3)), ((0, 1), (0, 1))))  # ties: each window's first
    with pytest.raises(ValueError, match="indices must lie in"):
        B.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2, indices=np.full((1, 1, 2, 2), 99))
    with pytest.raises(ValueError, match="indices has shape"):
        B.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2, indices=np.zeros((1, 1, 3, 2), np.int64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_avg_pool_backward(torch, rng, nd, dtype):
    import torch.nn.functional as TF

    for _ in range(CASES):
        x, kw = pool_case(rng, nd, dtype, dilated=False)
        if nd == 1:
            kw.pop("divisor_override")
        y = getattr(F, f"avg_pool{nd}d")(x, **kw)
        gy = rand(rng, y.shape, dtype)
        _, (tgx,) = torch_grads(torch, lambda a: getattr(TF, f"avg_pool{nd}d")(a, **kw), [x], gy)
        assert_close(getattr(B, f"avg_pool{nd}d_backward")(gy, x, **kw), tgx, dtype=dtype, what=f"{x.shape} {kw}")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_avg_pool_backward(torch, rng, nd):
    import torch.nn.functional as TF

    for dtype in DTYPES:
        for _ in range(6):
            x = rand(rng, (2, 3) + tuple(int(a) for a in rng.integers(1, 9, nd)), dtype)
            osz = tuple(int(a) for a in rng.integers(1, 6, nd))
            gy = rand(rng, (2, 3) + osz, dtype)
            _, (tgx,) = torch_grads(torch, lambda a: getattr(TF, f"adaptive_avg_pool{nd}d")(a, osz), [x], gy)
            fn = getattr(B, f"adaptive_avg_pool{nd}d_backward")
            assert_close(fn(gy, x, osz), tgx, dtype=dtype)
            assert_close(fn(gy, x), tgx, dtype=dtype)


# ------------------------------------------------------------------------ activations, linear


ACTS = [
    ("relu", {}, "relu"), ("leaky_relu", dict(negative_slope=0.2), "leaky_relu"), ("elu", dict(alpha=1.3), "elu"),
    ("sigmoid", {}, "sigmoid"), ("tanh", {}, "tanh"), ("gelu", {}, "gelu"), ("gelu", dict(approximate="tanh"), "gelu"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw,tname", ACTS)
def test_activation_backward(torch, rng, name, kw, tname, dtype):
    import torch.nn.functional as TF

    x = (rng.standard_normal((3, 5, 7)) * 3).astype(dtype)
    x[0, 0, :3] = [0.0, -0.0, 1e-30]
    gy = rand(rng, x.shape, dtype)
    _, (tgx,) = torch_grads(torch, lambda a: getattr(TF, tname)(a, **kw), [x], gy)
    fn = getattr(B, f"{name}_backward")
    assert_close(fn(gy, x, **kw), tgx, dtype=dtype, scale=2, what=name)
    if name in ("sigmoid", "tanh"):
        assert_close(fn(gy, output=getattr(F, name)(x)), tgx, dtype=dtype, scale=2, what=name + " from output")
    if name == "relu":
        assert_close(fn(gy, F.relu(x)), tgx, dtype=dtype, what="relu from output")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu"])
def test_activation_backward_from_input_against_numpy(isa, rng, name, dtype):
    """Given only the input, sigmoid, tanh and ELU take their outputs from the forward kernel in
    chunks of 4096: a size over several chunks with a ragged end, NaN and infinities included."""
    x = (rng.standard_normal(3 * 4096 + 77) * 4).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, 0.0]
    gy = rng.standard_normal(x.shape).astype(dtype)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            s = 1 / (1 + np.exp(-x64))
            want = gy * (1 - s) * s
        elif name == "tanh":
            want = gy * (1 - np.tanh(x64) ** 2)
        else:
            want = np.where(x64 <= 0, gy * 1.3 * np.exp(x64), gy)
    got = getattr(B, f"{name}_backward")(gy, x, **(dict(alpha=1.3) if name == "elu" else {}))
    assert_close(got, want, dtype=dtype, scale=4, what=name)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward(torch, rng, log, dtype):
    import torch.nn.functional as TF

    for shape, dim in [((4, 10), 1), ((2, 3, 5, 4), 1), ((3, 300), -1), ((2, 7, 3), 0)]:
        x = rand(rng, shape, dtype) * 4
        gy = rand(rng, shape, dtype)
        name = "log_softmax" if log else "softmax"
        y = getattr(F, name)(x, dim=dim)
        _, (tgx,) = torch_grads(torch, lambda a: getattr(TF, name)(a, dim=dim), [x], gy)
        assert_close(getattr(B, f"{name}_backward")(gy, y, dim), tgx, dtype=dtype, scale=4, what=f"{shape} {dim}")


def test_maxout_backward(rng):
    x = rand(rng, (2, 6, 3), np.float64)
    x[0, 0, 0] = x[0, 1, 0]  # a tie: the first piece wins
    gy = rand(rng, (2, 3, 3), np.float64)
    gx = B.maxout_backward(gy, x, 2)
    fd = finite_difference(lambda a: F.maxout(a, 2), x.copy(), gy)
    fd[0, :2, 0] = [gy[0, 0, 0], 0.0]
    assert_close(gx, fd, scale=1e4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_backward(torch, rng, dtype):
    import torch.nn.functional as TF

    for shape, n_out in [((5, 7), 3), ((2, 3, 4), 6), ((1, 33), 1), ((64, 128), 10)]:
        x, w, b = rand(rng, shape, dtype), rand(rng, (n_out, shape[-1]), dtype), rand(rng, (n_out,), dtype)
        gy = rand(rng, shape[:-1] + (n_out,), dtype)
        _, (tgx, tgw, tgb) = torch_grads(torch, TF.linear, [x, w, b], gy)
        gx, gw, gb = B.linear_backward(gy, x, w, b)
        assert_close(gx, tgx, dtype=dtype, scale=_tol(dtype))
        assert_close(gw, tgw, dtype=dtype, scale=_tol(dtype))
        assert_close(gb, tgb, dtype=dtype, scale=_tol(dtype))
        assert B.linear_backward(gy, x, w)[2] is None


# ------------------------------------------------------------------------ interpolate, batch norm, dropout


INTERP = [
    (3, "nearest", None), (4, "nearest", None), (5, "nearest", None), (4, "nearest-exact", None),
    (3, "linear", False), (3, "linear", True), (4, "bilinear", False), (4, "bilinear", True),
    (5, "trilinear", False), (5, "trilinear", True), (4, "area", None),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim,mode,align_corners", INTERP)
def test_interpolate(torch, rng, ndim, mode, align_corners, dtype):
    import torch.nn.functional as TF

    nd = ndim - 2
    for i in range(8):
        x = rand(rng, (2, 2) + tuple(int(a) for a in rng.integers(1, 7, nd)), dtype)
        if i % 2:
            kw = dict(size=tuple(int(a) for a in rng.integers(1, 11, nd)))
        else:
            kw = dict(scale_factor=tuple(float(rng.choice([0.5, 1.0, 1.7, 2.0, 3.0])) for _ in range(nd)))
            if i % 4 == 2 and mode != "area":
                kw["recompute_scale_factor"] = True
        if any(int(np.floor(s * f)) < 1 for s, f in zip(x.shape[2:], kw.get("scale_factor", [1] * nd))):
            continue
        kw.update(mode=mode, align_corners=align_corners)
        y = E.interpolate(x, **kw)
        gy = rand(rng, y.shape, dtype)
        ty, (tgx,) = torch_grads(torch, lambda a: TF.interpolate(a, **kw), [x], gy)
        what = f"{x.shape} {kw}"
        assert_close(y, ty, dtype=dtype, scale=4, what="forward " + what)
        assert_close(B.interpolate_backward(gy, x, **kw), tgx, dtype=dtype, scale=4, what="backward " + what)


def test_interpolate_errors(rng):
    x = rand(rng, (1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        E.interpolate(x)
    with pytest.raises(ValueError, match="needs a 5D input"):
        E.interpolate(x, scale_factor=2, mode="trilinear")
    with pytest.raises(ValueError, match="align_corners can only be set"):
        E.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        E.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="antialias"):
        E.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7), (2, 3, 4, 5), (2, 2, 3, 2, 3)])
def test_batch_norm(torch, rng, shape, training, dtype):
    import torch.nn.functional as TF

    c = shape[1]
    x = (rand(rng, shape, dtype) * 3 + 1).astype(dtype)
    w, b = rand(rng, (c,), dtype), rand(rng, (c,), dtype)
    rm, rv = rand(rng, (c,), dtype), (rng.random(c) + 0.5).astype(dtype)
    gy = rand(rng, shape, dtype)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty, (tgx, tgw, tgb) = torch_grads(
        torch, lambda a, ww, bb: TF.batch_norm(a, trm, trv, ww, bb, training=training, momentum=0.2, eps=1e-4),
        [x, w, b], gy)
    mrm, mrv = rm.copy(), rv.copy()
    y = E.batch_norm(x, mrm, mrv, w, b, training=training, momentum=0.2, eps=1e-4)
    scale = _tol(dtype) * 5
    assert_close(y, ty, dtype=dtype, scale=scale)
    assert_close(mrm, trm.numpy(), dtype=dtype, scale=scale)
    assert_close(mrv, trv.numpy(), dtype=dtype, scale=scale)
    gx, gw, gb = B.batch_norm_backward(gy, x, rm, rv, w, b, training=training, eps=1e-4)
    assert_close(gx, tgx, dtype=dtype, scale=scale)
    assert_close(gw, tgw, dtype=dtype, scale=scale)
    assert_close(gb, tgb, dtype=dtype, scale=scale)


def test_batch_norm_errors(rng):
    x = rand(rng, (1, 3), np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        E.batch_norm(x, None, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        E.batch_norm(x, None, None)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        E.batch_norm(rand(rng, (4, 3), np.float32), None, None, np.ones(2, np.float32), training=True)


def test_dropout(rng):
    x = rand(rng, (200, 50), np.float32)
    y, keep = E.native_dropout(x, 0.3, generator=np.random.default_rng(1))
    assert keep.dtype == bool and 0.65 < keep.mean() < 0.75
    assert_close(y, np.where(keep, x / np.float32(0.7), 0), dtype=np.float32)
    y2, _ = E.native_dropout(x, 0.3, generator=np.random.default_rng(1))
    assert np.array_equal(y, y2)
    gy = rand(rng, x.shape, np.float32)
    assert_close(B.dropout_backward(gy, keep, 0.3), np.where(keep, gy / np.float32(0.7), 0))
    assert E.dropout(x, 0.5, training=False) is x
    assert np.all(E.dropout(x, 1.0) == 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        E.dropout(x, 1.5)


def test_backward_argument_errors(rng):
    x = rand(rng, (1, 2, 5, 5), np.float32)
    w = rand(rng, (3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="grad_output has shape"):
        B.conv2d_backward(np.zeros((1, 3, 4, 4), np.float32), x, w)
    with pytest.raises(TypeError, match="grad_output has dtype float64"):
        B.conv2d_backward(np.zeros((1, 3, 3, 3)), x, w)
    with pytest.raises(ValueError, match="output_mask must be 3 bools"):
        B.conv2d_backward(np.zeros((1, 3, 3, 3), np.float32), x, w, output_mask=(True,))
    with pytest.raises(ValueError, match="dim must be given"):
        B.softmax_backward(x, x, None)
    with pytest.raises(ValueError, match="pass the forward's input"):
        B.sigmoid_backward(x)
    with pytest.raises(ValueError, match="not divisible by pieces"):
        B.maxout_backward(x, x, 3)
