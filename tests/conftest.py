"""Shared test helpers: the comparison rule, a torch fixture, seeded random data."""

import numpy as np
import pytest

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
DTYPES = [np.float32, np.float64]


def as_numpy(a):
    """A numpy copy of a numpy array or a torch tensor."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def assert_close(actual, expected, dtype=None, scale=1.0, what=""):
    """Compare with rtol = tol and atol = tol * max|expected|, tol by dtype
    (float32: 1e-5, float64: 1e-10) times `scale`. Shapes must match exactly and NaNs must
    sit in the same places; `dtype`, when given, is the dtype `actual` must have."""
    actual = as_numpy(actual)
    expected = as_numpy(expected)
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = TOL.get(np.dtype(dtype if dtype is not None else actual.dtype), 1e-5) * scale
    finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
    big = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(
        actual.astype(np.float64), expected.astype(np.float64),
        rtol=tol, atol=tol * big, equal_nan=True, err_msg=what,
    )


@pytest.fixture(scope="session")
def torch():
    """The torch module, or skip the test when torch is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def maybe_torch():
    """The torch module, or None when torch is not installed (the torch cross-check is skipped)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_apply(torch, fn, *arrays, **kwargs):
    """Run torch.nn.functional.<fn> (or a callable), numpy arrays turned into tensors;
    returns numpy (or a tuple of numpy arrays)."""
    import torch.nn.functional as TF

    f = getattr(TF, fn) if isinstance(fn, str) else fn
    args = [torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in arrays]
    with torch.no_grad():
        r = f(*args, **kwargs)
    if isinstance(r, tuple):
        return tuple(t.numpy() for t in r)
    return r.numpy()


def rand(rng, shape, dtype=np.float64):
    """Uniform in [-1, 1): exactly representable in float32 after the cast."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def same_bits_at_thread_counts(fn, counts=(1, 2, 3)):
    """fn() at each medconv thread count in turn (the count restored after): asserts that every result
    has the bits of the first, and returns the first."""
    import medconv

    before = medconv.get_num_threads()
    try:
        results = []
        for n in counts:
            medconv.set_num_threads(n)
            results.append(fn())
    finally:
        medconv.set_num_threads(before)
    for n, r in zip(counts[1:], results[1:]):
        np.testing.assert_array_equal(r, results[0], err_msg=f"{n} threads against {counts[0]}")
    return results[0]


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name, so every test is reproducible."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.name)) % (2**32)
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ torch-side helpers


def torch_conv(torch, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """torch.nn.ConvNd with the given weights (the module is what takes padding_mode)."""
    import warnings

    nd = w.ndim - 2
    cls = getattr(torch.nn, f"Conv{nd}d")
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    m = cls(x.shape[1], w.shape[0], tuple(w.shape[2:]), stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=b is not None, padding_mode=padding_mode, dtype=tdt)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "padding='same' with even kernel lengths ..."
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        if b is not None:
            m.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        return m(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def torch_avg_pool(torch, x, nd, **kw):
    """torch avg_poolNd; 1d runs as 2d with a unit height, which is how torch defines it
    (and torch's avg_pool1d has no divisor_override)."""
    import torch.nn.functional as TF

    t = torch.from_numpy(np.ascontiguousarray(x))
    if nd == 1:
        k = kw.pop("kernel_size")
        s = kw.pop("stride", None)
        p = kw.pop("padding", 0)
        one = lambda v: v[0] if isinstance(v, (tuple, list)) else v  # noqa: E731
        r = TF.avg_pool2d(t.unsqueeze(-2), (1, one(k)), None if s is None else (1, one(s)), (0, one(p)), **kw)
        return r.squeeze(-2).numpy()
    return getattr(TF, f"avg_pool{nd}d")(t, **kw).numpy()


# ------------------------------------------------------------------ random valid cases


def _pick(rng, nd, lo, hi):
    """An int or an nd-tuple of ints in [lo, hi]."""
    v = tuple(int(a) for a in rng.integers(lo, hi + 1, nd))
    return v[0] if (nd == 1 or rng.random() < 0.4) and len(set(v)) == 1 else v


def _tup(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


MAX_SIZE = {1: 13, 2: 8, 3: 5}


def conv_case(rng, nd, dtype=np.float64, modes=("zeros", "reflect", "replicate", "circular"), n=None):
    """(x, w, b, kwargs) for a valid convNd call."""
    groups = int(rng.choice([1, 1, 2, 3]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = tuple(int(a) for a in rng.integers(1, 4, nd))
    dilation = _pick(rng, nd, 1, 2)
    mode = str(rng.choice(list(modes)))
    kind = str(rng.choice(["int", "tuple", "same", "valid"]))
    stride = 1 if kind == "same" else _pick(rng, nd, 1, 3)
    d = _tup(dilation, nd)
    if kind == "same":
        padding = "same"
        pads = [(d[i] * (k[i] - 1) // 2, d[i] * (k[i] - 1) - d[i] * (k[i] - 1) // 2) for i in range(nd)]
    elif kind == "valid":
        padding = "valid"
        pads = [(0, 0)] * nd
    else:
        p = tuple(int(a) for a in rng.integers(0, 3, nd))
        padding = p[0] if kind == "int" else p
        pads = [(a, a) for a in _tup(padding, nd)]
    sizes = []
    for i in range(nd):
        lo = max(1, d[i] * (k[i] - 1) + 1 - sum(pads[i]), max(pads[i]) + (1 if mode == "reflect" else 0))
        sizes.append(int(rng.integers(lo, max(lo, MAX_SIZE[nd]) + 1)))
    N = int(rng.integers(1, 3)) if n is None else n
    x = rand(rng, (N, cin, *sizes), dtype)
    w = rand(rng, (cout, cin // groups, *k), dtype)
    b = rand(rng, (cout,), dtype) if rng.random() < 0.7 else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    return x, w, b, kw


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


def _windows_ok(size, k, s, p, d, ceil_mode):
    """Output size > 0 and no window lies wholly in the padding."""
    o = _out_size(size, k, s, p, d, ceil_mode)
    if o <= 0:
        return False
    return all(any(0 <= j * s - p + t * d < size for t in range(k)) for j in range(o))


def pool_case(rng, nd, dtype=np.float64, dilated=True, n=None):
    """(x, kwargs) for a valid max_poolNd (dilated=True) or avg_poolNd call."""
    while True:
        k = _pick(rng, nd, 1, 3)
        stride = None if rng.random() < 0.3 else _pick(rng, nd, 1, 3)
        kk = _tup(k, nd)
        padding = _pick(rng, nd, 0, 1)
        padding = tuple(min(a, b // 2) for a, b in zip(_tup(padding, nd), kk))
        if len(set(padding)) == 1 and rng.random() < 0.5:
            padding = padding[0]
        dilation = _pick(rng, nd, 1, 2) if dilated else 1
        ceil_mode = bool(rng.random() < 0.5)
        ss = kk if stride is None else _tup(stride, nd)
        pp, dd = _tup(padding, nd), _tup(dilation, nd)
        sizes = []
        for i in range(nd):
            for _ in range(20):
                sz = int(rng.integers(1, MAX_SIZE[nd] + 1))
                # torch's avg_pool3d also wants the unpadded input at least the kernel's size
                small = not dilated and nd == 3 and sz < kk[i]
                if _windows_ok(sz, kk[i], ss[i], pp[i], dd[i], ceil_mode) and not small:
                    break
            else:
                sz = None
            sizes.append(sz)
        if None in sizes:
            continue
        N = int(rng.integers(1, 3)) if n is None else n
        x = rand(rng, (N, int(rng.integers(1, 4)), *sizes), dtype)
        kw = dict(kernel_size=k, stride=stride, padding=padding, ceil_mode=ceil_mode)
        if dilated:
            kw["dilation"] = dilation
        else:
            kw["count_include_pad"] = bool(rng.random() < 0.5)
            kw["divisor_override"] = None if rng.random() < 0.6 else int(rng.integers(1, 6))
        return x, kw


def pad_case(rng, dtype=np.float64, modes=("constant", "reflect", "replicate", "circular")):
    """(x, pad, mode, value) for a valid pad call."""
    mode = str(rng.choice(list(modes)))
    nd = int(rng.integers(1, 4))
    ndim = nd + int(rng.integers(1, 3))
    shape = [int(rng.integers(1, 4)) for _ in range(ndim - nd)]
    shape += [int(rng.integers(1, 6)) for _ in range(nd)]
    pad = []
    for size in shape[::-1][:nd]:  # last dim first
        hi = {"reflect": size - 1, "circular": size}.get(mode, 3)
        pad += [int(rng.integers(0, min(hi, 3) + 1)) for _ in range(2)]
    value = float(rng.choice([0.0, 1.5, -2.0])) if mode == "constant" else 0.0
    return rand(rng, shape, dtype), tuple(pad), mode, value


# ------------------------------------------------------------------ kernel variants


def _supported_isas():
    try:
        import medconv
        return list(medconv.backend_info()["supported_isas"])
    except Exception:  # medconv not built: the medconv tests fail on their own import
        return ["auto"]


@pytest.fixture(params=_supported_isas())
def isa(request):
    """Runs the test once per kernel variant this CPU can run (scalar, avx2, ...)."""
    import medconv

    before = medconv.backend_info()["isa"]
    medconv._core.select_isa(request.param)
    try:
        yield request.param
    finally:
        medconv._core.select_isa(before)
