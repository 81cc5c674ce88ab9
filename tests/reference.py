"""An independent NumPy reference for every op of medconv's public contract.

Written from the PyTorch documentation and semantics, sharing no code with medconv.
Everything is computed in float64 and returned in the input's dtype (indices are int64).
It is meant to be obviously right, not fast: keep the shapes that go through it small.
"""

import itertools
import math

import numpy as np

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose", "pad",
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu",
    "softmax", "log_softmax", "maxout", "linear",
]


def _ntuple(v, n):
    if isinstance(v, (tuple, list)):
        assert len(v) == n, (v, n)
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _f64(x):
    x = np.asarray(x)
    return x.astype(np.float64), x.dtype


# ----------------------------------------------------------------------------------- pad


def _source_index(j, size, mode):
    """Where output position j (in input coordinates, may lie outside [0, size)) reads from;
    None means "the constant value"."""
    if 0 <= j < size:
        return j
    if mode == "constant":
        return None
    if mode == "replicate":
        return min(max(j, 0), size - 1)
    if mode == "circular":
        return j % size
    if mode == "reflect":  # mirror without repeating the edge; torch needs pad < size
        if j < 0:
            j = -j
        if j >= size:
            j = 2 * (size - 1) - j
        assert 0 <= j < size
        return j
    raise ValueError(mode)


def _pad_last_dims(x, pads, mode, value=0.0):
    """x: float64 array; pads: [(before, after)] for the last len(pads) dims, in dim order.
    Negative amounts crop."""
    nd = len(pads)
    sizes = x.shape[x.ndim - nd:]
    out_sizes = tuple(s + b + a for s, (b, a) in zip(sizes, pads))
    assert all(s >= 0 for s in out_sizes), out_sizes
    # the mapping is separable: pad one dim at a time, each output index reading one source
    # index (or the constant)
    out = x
    for d, (s, (b, _a), o) in enumerate(zip(sizes, pads, out_sizes)):
        axis = x.ndim - nd + d
        src = [_source_index(j - b, s, mode) for j in range(o)]
        take = np.array([0 if i is None else i for i in src], dtype=np.int64)
        if s == 0:
            shape = list(out.shape)
            shape[axis] = o
            out = np.full(shape, value, dtype=np.float64)
            continue
        out = np.take(out, take, axis=axis)
        const = np.array([i is None for i in src])
        if const.any():
            sl = [slice(None)] * out.ndim
            sl[axis] = const
            out[tuple(sl)] = value
    return out


def pad(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad: `pad` is (left_last, right_last, left_2nd_last, ...)."""
    x64, dt = _f64(x)
    pad = tuple(int(p) for p in pad)
    assert len(pad) % 2 == 0 and len(pad) // 2 <= x64.ndim
    nd = len(pad) // 2
    pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(nd)][::-1]  # now in dim order
    if mode == "reflect":
        for (b, a), s in zip(pads, x64.shape[x64.ndim - nd:]):
            assert b < s and a < s, "reflect padding must be smaller than the input"
    if mode == "circular":
        for (b, a), s in zip(pads, x64.shape[x64.ndim - nd:]):
            assert b <= s and a <= s, "circular padding must not exceed the input"
    return _pad_last_dims(x64, pads, mode, float(value)).astype(dt)


# ---------------------------------------------------------------------------------- conv


def _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd):
    x64, dt = _f64(x)
    w = np.asarray(weight, dtype=np.float64)
    assert x64.ndim == nd + 2 and w.ndim == nd + 2
    stride = _ntuple(stride, nd)
    dilation = _ntuple(dilation, nd)
    k = w.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nd
        elif padding == "same":
            assert all(s == 1 for s in stride), "padding='same' needs stride 1"
            pads = []
            for i in range(nd):
                total = dilation[i] * (k[i] - 1)
                left = total // 2
                pads.append((left, total - left))  # the odd extra goes on the right
        else:
            raise ValueError(padding)
    else:
        pads = [(p, p) for p in _ntuple(padding, nd)]

    mode = "constant" if padding_mode == "zeros" else padding_mode
    assert mode in ("constant", "reflect", "replicate", "circular")
    xp = _pad_last_dims(x64, pads, mode, 0.0)  # pad first, then a convolution with padding 0

    N, C = xp.shape[:2]
    OC, cin_g = w.shape[:2]
    assert C == cin_g * groups and OC % groups == 0
    cout_g = OC // groups
    out_sz = [(xp.shape[2 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    assert all(o > 0 for o in out_sz), out_sz
    out = np.zeros((N, OC) + tuple(out_sz), dtype=np.float64)
    for g in range(groups):
        xg = xp[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g]
        for kidx in itertools.product(*[range(kk) for kk in k]):
            sl = tuple(
                slice(kidx[i] * dilation[i], kidx[i] * dilation[i] + (out_sz[i] - 1) * stride[i] + 1, stride[i])
                for i in range(nd)
            )
            patch = xg[(slice(None), slice(None)) + sl]  # [N, cin_g, *out]
            wk = wg[(slice(None), slice(None)) + kidx]   # [cout_g, cin_g]
            out[:, g * cout_g:(g + 1) * cout_g] += np.einsum("nc...,oc->no...", patch, wk)
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        assert b.shape == (OC,)
        out += b.reshape((1, OC) + (1,) * nd)
    return out.astype(dt)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, 2)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, 3)


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch's conv_transposeNd (N = x.ndim - 2): every input value scattered through the kernel,
    y[n, g*cout_g + j, o*stride - padding + k*dilation] += x[n, g*cin_g + i, o] * weight[g*cin_g + i, j, k].
    The same sum is the input gradient of the conv with this stride, padding and dilation
    (output_padding then makes up the input size)."""
    x64, dt = _f64(x)
    w = np.asarray(weight, dtype=np.float64)
    nd = x64.ndim - 2
    stride, padding = _ntuple(stride, nd), _ntuple(padding, nd)
    output_padding, dilation = _ntuple(output_padding, nd), _ntuple(dilation, nd)
    N, C = x64.shape[:2]
    in_sz, k = x64.shape[2:], w.shape[2:]
    cin_g, cout_g = C // groups, w.shape[1]
    assert w.shape[0] == C and C % groups == 0
    out_sz = [(in_sz[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k[i] - 1) + output_padding[i] + 1
              for i in range(nd)]
    # the scatter lands at q = o*stride + k*dilation in `full`, y = full[padding : padding + out]
    full_sz = [max((in_sz[i] - 1) * stride[i] + dilation[i] * (k[i] - 1) + 1, padding[i] + out_sz[i])
               for i in range(nd)]
    full = np.zeros((N, cout_g * groups) + tuple(full_sz), dtype=np.float64)
    for g in range(groups):
        xg = x64[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cin_g:(g + 1) * cin_g]
        for kidx in itertools.product(*[range(kk) for kk in k]):
            sl = tuple(slice(kidx[i] * dilation[i], kidx[i] * dilation[i] + (in_sz[i] - 1) * stride[i] + 1, stride[i])
                       for i in range(nd))
            wk = wg[(slice(None), slice(None)) + kidx]  # [cin_g, cout_g]
            full[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + sl] += np.einsum("ni...,ij->nj...", xg, wk)
    out = full[(slice(None), slice(None)) + tuple(slice(padding[i], padding[i] + out_sz[i]) for i in range(nd))]
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return out.astype(dt)


# ------------------------------------------------------------------------------- pooling


def pool_output_size(size, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= size + p:  # the last window must start inside the input or left pad
            o -= 1
    else:
        o = span // s + 1
    return o


def _pool_args(x, kernel_size, stride, padding, dilation, nd):
    k = _ntuple(kernel_size, nd)
    s = k if stride is None else _ntuple(stride, nd)
    p = _ntuple(padding, nd)
    d = _ntuple(dilation, nd)
    assert x.ndim in (nd + 1, nd + 2)
    assert all(pp <= kk // 2 for pp, kk in zip(p, k)), "pad must be at most half the kernel"
    return k, s, p, d


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    x64, dt = _f64(x)
    k, s, p, d = _pool_args(x64, kernel_size, stride, padding, dilation, nd)
    sp = x64.shape[-nd:]
    lead = x64.shape[:-nd]
    osz = tuple(pool_output_size(sp[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(nd))
    assert all(o > 0 for o in osz), osz
    out = np.empty(lead + osz, dtype=np.float64)
    idx = np.empty(lead + osz, dtype=np.int64)
    flat = x64.reshape(lead + (int(np.prod(sp)),))
    strides_flat = [int(np.prod(sp[i + 1:])) for i in range(nd)]  # C-order flat index
    for o in itertools.product(*[range(oo) for oo in osz]):
        starts = [o[i] * s[i] - p[i] for i in range(nd)]
        positions = []  # valid input positions of the window, in scan (C) order
        for kk in itertools.product(*[range(kd) for kd in k]):
            pos = [starts[i] + kk[i] * d[i] for i in range(nd)]
            if all(0 <= pos[i] < sp[i] for i in range(nd)):
                positions.append(sum(pos[i] * strides_flat[i] for i in range(nd)))
        if not positions:
            # only padding under the window: torch leaves -inf and the first dilated start
            first = []
            for i in range(nd):
                st = starts[i]
                while st < 0:
                    st += d[i]
                first.append(st)
            out[(Ellipsis,) + o] = -np.inf
            idx[(Ellipsis,) + o] = sum(first[i] * strides_flat[i] for i in range(nd))
            continue
        positions = np.array(positions, dtype=np.int64)
        vals = flat[..., positions]  # [*lead, nwin]
        nan = np.isnan(vals)
        # torch: `if (val > maxval || isnan(val))` -> the first maximum, or the last NaN
        first_max = np.argmax(np.where(nan, -np.inf, vals), axis=-1)
        # argmax of all -inf gives 0, the first position, as torch does
        last_nan = nan.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
        which = np.where(nan.any(axis=-1), last_nan, first_max)
        out[(Ellipsis,) + o] = np.take_along_axis(vals, which[..., None], axis=-1)[..., 0]
        idx[(Ellipsis,) + o] = positions[which]
    out = out.astype(dt)
    return (out, idx) if return_indices else out


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3)


def _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nd):
    x64, dt = _f64(x)
    k, s, p, _ = _pool_args(x64, kernel_size, stride, padding, 1, nd)
    sp = x64.shape[-nd:]
    lead = x64.shape[:-nd]
    osz = tuple(pool_output_size(sp[i], k[i], s[i], p[i], 1, ceil_mode) for i in range(nd))
    assert all(o > 0 for o in osz), osz
    out = np.empty(lead + osz, dtype=np.float64)
    for o in itertools.product(*[range(oo) for oo in osz]):
        lo = [o[i] * s[i] - p[i] for i in range(nd)]
        hi = [min(lo[i] + k[i], sp[i] + p[i]) for i in range(nd)]  # clipped to input + pad
        pool_size = int(np.prod([hi[i] - lo[i] for i in range(nd)]))
        lo = [max(v, 0) for v in lo]
        hi = [min(hi[i], sp[i]) for i in range(nd)]
        if any(lo[i] >= hi[i] for i in range(nd)):
            out[(Ellipsis,) + o] = 0.0
            continue
        window = x64[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(nd))]
        total = window.sum(axis=tuple(range(-nd, 0)))
        if divisor_override:
            div = divisor_override
        elif count_include_pad:
            div = pool_size
        else:
            div = int(np.prod([hi[i] - lo[i] for i in range(nd)]))
        out[(Ellipsis,) + o] = total / div
    return out.astype(dt)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    # torch.nn.functional.avg_pool1d takes no divisor_override; medconv's does (same rule)
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 1)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 3)


def _adaptive_avg_pool(x, output_size, nd):
    x64, dt = _f64(x)
    assert x64.ndim in (nd + 1, nd + 2)
    sp = x64.shape[-nd:]
    lead = x64.shape[:-nd]
    if isinstance(output_size, (tuple, list)):
        assert len(output_size) == nd
        osz = tuple(sp[i] if output_size[i] is None else int(output_size[i]) for i in range(nd))
    else:
        osz = (int(output_size),) * nd
    out = np.empty(lead + osz, dtype=np.float64)
    for o in itertools.product(*[range(oo) for oo in osz]):
        lo = [(o[i] * sp[i]) // osz[i] for i in range(nd)]                  # floor(o * L / O)
        hi = [-(-((o[i] + 1) * sp[i]) // osz[i]) for i in range(nd)]        # ceil((o+1) * L / O)
        window = x64[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(nd))]
        out[(Ellipsis,) + o] = window.sum(axis=tuple(range(-nd, 0))) / int(np.prod(window.shape[-nd:]))
    return out.astype(dt)


def adaptive_avg_pool1d(x, output_size):
    return _adaptive_avg_pool(x, output_size, 1)


def adaptive_avg_pool2d(x, output_size):
    return _adaptive_avg_pool(x, output_size, 2)


def adaptive_avg_pool3d(x, output_size):
    return _adaptive_avg_pool(x, output_size, 3)


# --------------------------------------------------------------------------- activations


def relu(x):
    x64, dt = _f64(x)
    return np.where(x64 > 0, x64, np.where(np.isnan(x64), x64, 0.0)).astype(dt)


def leaky_relu(x, negative_slope=0.01):
    x64, dt = _f64(x)
    return np.where(x64 > 0, x64, x64 * negative_slope).astype(dt)


def elu(x, alpha=1.0):
    x64, dt = _f64(x)
    return np.where(x64 > 0, x64, alpha * np.expm1(np.minimum(x64, 0.0))).astype(dt)


def sigmoid(x):
    x64, dt = _f64(x)
    e = np.exp(-np.abs(x64))  # never overflows
    return np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(dt)


def tanh(x):
    x64, dt = _f64(x)
    return np.tanh(x64).astype(dt)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate="none"):
    x64, dt = _f64(x)
    with np.errstate(over="ignore", invalid="ignore"):  # +-inf in: torch gives inf / nan too
        y = _gelu64(x64, approximate)
    return y.astype(dt)


def _gelu64(x64, approximate):
    if approximate == "none":
        y = 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))
    elif approximate == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        raise ValueError(approximate)
    return y


def softmax(x, dim):
    x64, dt = _f64(x)
    m = np.max(x64, axis=dim, keepdims=True)
    e = np.exp(x64 - m)
    return (e / np.sum(e, axis=dim, keepdims=True)).astype(dt)


def log_softmax(x, dim):
    x64, dt = _f64(x)
    m = np.max(x64, axis=dim, keepdims=True)
    z = x64 - m
    return (z - np.log(np.sum(np.exp(z), axis=dim, keepdims=True))).astype(dt)


def maxout(x, pieces, dim=1):
    """Max over each run of `pieces` consecutive entries along `dim`: C -> C // pieces."""
    x64, dt = _f64(x)
    dim = dim % x64.ndim
    C = x64.shape[dim]
    assert C % pieces == 0
    shape = x64.shape[:dim] + (C // pieces, pieces) + x64.shape[dim + 1:]
    return np.max(x64.reshape(shape), axis=dim + 1).astype(dt)


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias; x: [..., in], weight: [out, in], bias: [out]."""
    x64, dt = _f64(x)
    w = np.asarray(weight, dtype=np.float64)
    y = x64 @ w.T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return y.astype(dt)
