"""GPU implementations of medconv's ops: CuPy arrays in, CuPy arrays out (CUDA tensors read through
DLPack come back as tensors of the same kind), on medconv's own CUDA kernels (cuda/*.cu, see
_cuda.py).

Two layers:
- kernel calls with the signatures of medconv._core's bindings (`conv_forward(x, w, b, y, stride,
  pad, dilation, groups, act)`, ...), on C-contiguous CuPy arrays whose shapes are already checked;
- ops. The forward ops of medconv.functional (conv, pad, pools, activations, softmax, maxout,
  linear) come here after functional's own validation, with its validated arguments. The ops of
  functional.extra and functional.backward are here with their full public signatures
  (`conv2d_backward(grad_output, input, weight, ...)`), validated by the same helpers.

Mixing a CPU array with a GPU one is a TypeError; results are written by one thread per
element with sums in a fixed order (no float atomics), so a device gives the same bits every run.
"""
from __future__ import annotations

import math
import numbers
import sys

import numpy as np

from . import _core, _cuda
from ._backend import Source, _on_cuda, as_array
from ._cuda import NULL, i32, i64, scalar

# ------------------------------------------------------------------ plumbing


def _cp():
    return _cuda.cupy()


def check_gpu(arr, name: str, ref_name: str = "input") -> None:
    """TypeError unless `arr` (when given) is a GPU (CuPy) array like the op's input."""
    if arr is not None and not _cuda.is_cupy(arr):
        raise TypeError(
            f"{name} is a CPU array ({type(arr).__name__}) but {ref_name} is on the GPU; pass all arrays "
            f"on one device (cupy.asarray(...) to move a numpy array to the GPU, cupy.asnumpy(...) back)")


def _c(a):
    """C-contiguous (a visible copy of a strided view); None stays None."""
    if a is None:
        return None
    return a if a.flags.c_contiguous else _cp().ascontiguousarray(a)


def _arg(a):
    return NULL if a is None else a


def _empty(shape, dtype):
    return _cp().empty(tuple(int(s) for s in shape), dtype=dtype)


def _zeros(shape, dtype):
    return _cp().zeros(tuple(int(s) for s in shape), dtype=dtype)


def prepare_out(out, shape, dtype, name: str = "out"):
    """A fresh GPU output, or the caller's `out=` (a CuPy array or CUDA tensor) after checking it."""
    if out is None:
        return _empty(shape, dtype)
    arr, s = as_array(out, name)
    if s.kind != "cupy":
        raise TypeError(f"{name} is a CPU array but input is on the GPU; pass a CuPy array (or CUDA tensor) as {name}")
    if arr.dtype != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous array")
    return arr


def wrap(result, src: Source, out=None):
    """The result as the caller's kind: the caller's own `out` if given; a torch tensor for a torch
    CUDA tensor in (DLPack, no copy); else the CuPy array."""
    if out is not None:
        return out
    if result is None:
        return None
    if src.obj is not None and "torch" in sys.modules and isinstance(src.obj, sys.modules["torch"].Tensor):
        return sys.modules["torch"].from_dlpack(result)
    return result


def _wrap_all(src, *arrays):
    return tuple(wrap(a, src) for a in arrays)


def _prod(shape) -> int:
    return int(math.prod(int(s) for s in shape))


def _to5d(arr, nd):
    return arr.reshape(tuple(arr.shape[:2]) + (1,) * (3 - nd) + tuple(arr.shape[2:]))


def _as4d(arr, nd):
    """(..., *spatial) -> (planes, D, H, W) view of a C-contiguous array."""
    lead = arr.shape[: arr.ndim - nd]
    return arr.reshape((_prod(lead),) + (1,) * (3 - nd) + tuple(arr.shape[arr.ndim - nd:]))


def _pad3(t, nd, fill):
    return (fill,) * (3 - nd) + tuple(t)


# ================================================================== kernel calls (_core's signatures)

# ------------------------------------------------------------------ convolution


def _conv_args(xs, ws, ys, stride, pad, dilation, groups):
    """The geometry arguments of every conv.cu kernel: x [N, C, D, H, W], w [OC, C/g, K...], y [N, OC, O...]."""
    n, c, d, h, w = xs
    oc, cg, kd, kh, kw = ws
    if cg * kd * kh * kw > _cuda.INT32_MAX or (oc // groups) * kd * kh * kw > _cuda.INT32_MAX:
        raise ValueError(f"weight of shape {tuple(ws)} is too large for the GPU kernels (its reduction exceeds 2**31)")
    return (i64(n), i64(c), i64(d), i64(h), i64(w), i64(oc), i64(ys[2]), i64(ys[3]), i64(ys[4]),
            i32(kd, "kernel size"), i32(kh, "kernel size"), i32(kw, "kernel size"),
            *(i32(s, "stride") for s in stride), *(i32(p, "padding") for p in pad),
            *(i32(dl, "dilation") for dl in dilation), i32(groups, "groups"))


def _tile(cols: int) -> tuple[str, int, int]:
    """(name, BM, BN) of the tiled kernel for a GEMM with `cols` columns."""
    if cols <= 16:
        return "bn16", 128, 16
    if cols <= 32:
        return "bn32", 128, 32
    return "bn64", 64, 64


def conv_forward(x, w, b, y, stride, pad, dilation, groups, act=0):
    """y = conv(x, w) + b (act 1: ReLU fused); 5-D C-contiguous CuPy arrays, pad = leading zeros."""
    args = _conv_args(x.shape, w.shape, y.shape, stride, pad, dilation, groups)
    n, oc = x.shape[0], w.shape[0]
    ocg = oc // groups
    rows = n * _prod(y.shape[2:])
    tile, bm, bn = _tile(ocg)
    grid = (math.ceil(rows / bm), math.ceil(ocg / bn), groups)
    if ocg <= 4 or grid[0] > _cuda.INT32_MAX or max(grid[1:]) > _cuda.GRID_YZ_MAX:
        _cuda.launch_1d(_cuda.typed("conv", "conv_direct_forward", x.dtype),
                        n * groups * math.ceil(ocg / 4) * _prod(y.shape[2:]),
                        (x, w, _arg(b), y, *args, i32(act)))
    else:
        _cuda.launch_grid(_cuda.typed("conv", f"conv_gemm_forward_{tile}", x.dtype), grid,
                          (x, w, _arg(b), y, *args, i32(act)), "conv forward")


def conv_backward_input(gy, w, gx, stride, pad, dilation, groups, bias=None):
    """gx = the input gradient of conv(x of gx's shape, w) given gy (+ bias: the transposed conv)."""
    args = _conv_args(gx.shape, w.shape, gy.shape, stride, pad, dilation, groups)
    n, c = gx.shape[:2]
    cg = c // groups
    rows = n * _prod(gx.shape[2:])
    tile, bm, bn = _tile(cg)
    grid = (math.ceil(rows / bm), math.ceil(cg / bn), groups)
    if cg <= 4 or grid[0] > _cuda.INT32_MAX or max(grid[1:]) > _cuda.GRID_YZ_MAX:
        _cuda.launch_1d(_cuda.typed("conv", "conv_direct_backward_input", gx.dtype), gx.size,
                        (gy, w, _arg(bias), gx, *args))
    else:
        _cuda.launch_grid(_cuda.typed("conv", f"conv_gemm_backward_input_{tile}", gx.dtype), grid,
                          (gy, w, _arg(bias), gx, *args), "conv input gradient")


_WORKSPACE_BYTES = 512 << 20  # the most the split-K weight gradient may allocate for partial sums


def conv_backward_weight(x, gy, gw, stride, pad, dilation, groups):
    """gw = the weight gradient of conv(x, w of gw's shape) given gy: split-K partial sums in fixed
    ranges, added in order (deterministic for a given device)."""
    args = _conv_args(x.shape, gw.shape, gy.shape, stride, pad, dilation, groups)
    n = x.shape[0]
    oc, cg = gw.shape[:2]
    kvol = _prod(gw.shape[2:])
    ocg, cols = oc // groups, cg * kvol
    osp = _prod(gy.shape[2:])
    wsize = gw.size
    sms = _cuda.sm_count()
    max_splits_mem = max(1, _WORKSPACE_BYTES // max(1, wsize * gw.dtype.itemsize))
    if ocg <= 4:
        rows = n * gy.shape[2] * gy.shape[3]
        splits = max(1, min(math.ceil(2048 * sms / wsize), rows, max_splits_mem))
        kernel, grid = _cuda.typed("conv", "conv_direct_backward_weight", x.dtype), None
    else:
        tile, bm, bn = ("bn16", 128, 16) if cols <= 16 else ("bn32", 128, 32) if cols <= 32 else ("bn64", 64, 64)
        base = math.ceil(ocg / bm) * math.ceil(cols / bn) * groups
        if math.ceil(cols / bn) > _cuda.GRID_YZ_MAX or groups > _cuda.GRID_YZ_MAX:
            return _conv_backward_weight_direct(x, gy, gw, args, n, gy.shape, sms, wsize, max_splits_mem)
        splits = max(1, min(math.ceil(4 * sms / base), max(1, n * osp // 512), max_splits_mem,
                            _cuda.GRID_YZ_MAX // groups))
        kernel = _cuda.typed("conv", f"conv_gemm_backward_weight_{tile}", x.dtype)
        grid = (math.ceil(ocg / bm), math.ceil(cols / bn), groups * splits)
    ws = gw if splits == 1 else _empty((splits, wsize), gw.dtype)
    if grid is None:
        _cuda.launch_1d(kernel, splits * wsize, (x, gy, ws, *args, i64(splits)))
    else:
        _cuda.launch_grid(kernel, grid, (x, gy, ws, *args, i64(splits)), "conv weight gradient")
    if splits > 1:
        _cuda.launch_1d(_cuda.typed("conv", "conv_reduce_splits", gw.dtype), wsize, (ws, gw, i64(wsize), i64(splits)))


def _conv_backward_weight_direct(x, gy, gw, args, n, gys, sms, wsize, max_splits_mem):
    splits = max(1, min(math.ceil(2048 * sms / wsize), n * gys[2] * gys[3], max_splits_mem))
    ws = gw if splits == 1 else _empty((splits, wsize), gw.dtype)
    _cuda.launch_1d(_cuda.typed("conv", "conv_direct_backward_weight", x.dtype), splits * wsize,
                    (x, gy, ws, *args, i64(splits)))
    if splits > 1:
        _cuda.launch_1d(_cuda.typed("conv", "conv_reduce_splits", gw.dtype), wsize, (ws, gw, i64(wsize), i64(splits)))


def _parts(c: int, m: int) -> int:
    """Blocks per channel of a per-channel reduction over m values: enough blocks to fill the GPU,
    none with less than 2048 values."""
    return max(1, min(math.ceil(8 * _cuda.sm_count() / max(1, c)), math.ceil(m / 2048)))


def channel_sum(gy, gb):
    """gb[c] = sum of gy[:, c, ...] (C-contiguous gy of >= 2 dims)."""
    n, c = gy.shape[:2]
    s = _prod(gy.shape[2:])
    parts = _parts(c, n * s)
    ws = _empty((c * parts,), gb.dtype)
    _cuda.launch_blocks(_cuda.typed("conv", "channel_sum_partial", gy.dtype), c * parts,
                        (gy, ws, i64(n), i64(c), i64(s), i64(parts)))
    _cuda.launch_1d(_cuda.typed("conv", "channel_sum_finalize", gy.dtype), c, (ws, gb, i64(c), i64(parts)))


# ------------------------------------------------------------------ pad


def _pad_before_after(pad):
    before, after = [0, 0, 0], [0, 0, 0]
    for i in range(len(pad) // 2):
        before[2 - i], after[2 - i] = pad[2 * i], pad[2 * i + 1]
    return before, after


def pad_array(x, pad, mode: str, value: float, out=None):
    """Pads a C-contiguous CuPy array whose arguments are already checked (functional.pad's rules)."""
    npad = len(pad) // 2
    before, after = _pad_before_after(pad)
    lead = tuple(x.shape[: x.ndim - npad])
    tail = (1,) * (3 - npad) + tuple(x.shape[x.ndim - npad:])
    out_tail = tuple(t + b + a for t, b, a in zip(tail, before, after))
    y = prepare_out(out, lead + out_tail[3 - npad:], x.dtype)
    if y.size:
        outer = _prod(lead)
        _cuda.launch_1d(_cuda.typed("pad", "pad_forward", x.dtype), y.size,
                        (x, y, i64(outer), *(i64(t) for t in tail), *(i64(b) for b in before),
                         *(i64(o) for o in out_tail), i32(_core.PAD_MODES[mode]), scalar(value, x.dtype)))
    return y


def pad_backward_array(g, shape, pad, mode: str):
    """The gradient of pad_array(x of `shape`, pad, mode) given its output's gradient g (C-contiguous)."""
    npad = len(pad) // 2
    before, after = _pad_before_after(pad)
    lead = tuple(shape[: len(shape) - npad])
    tail = (1,) * (3 - npad) + tuple(shape[len(shape) - npad:])
    out_tail = tuple(t + b + a for t, b, a in zip(tail, before, after))
    gx = _empty(shape, g.dtype)
    if gx.size:
        _cuda.launch_1d(_cuda.typed("pad", "pad_backward", g.dtype), gx.size,
                        (g, gx, i64(_prod(lead)), *(i64(t) for t in tail), *(i64(b) for b in before),
                         *(i64(o) for o in out_tail), i32(_core.PAD_MODES[mode])))
    return gx


# ------------------------------------------------------------------ pooling


def _pool_geom(x4, y4):
    return tuple(i64(v) for v in (x4.shape[0], *x4.shape[1:], *y4.shape[1:]))


def _ints(values, name):
    return tuple(i32(v, name) for v in values)


def max_pool_kernel(x4, y4, idx4, kernel, stride, padding, dilation):
    _cuda.launch_1d(_cuda.typed("pool", "max_pool_forward", x4.dtype), y4.size,
                    (x4, y4, _arg(idx4), *_pool_geom(x4, y4), *_ints(kernel, "kernel_size"), *_ints(stride, "stride"),
                     *_ints(padding, "padding"), *_ints(dilation, "dilation")))


def max_pool_backward_kernel(g4, idx4, gx4, kernel, stride, padding, dilation, check_indices=True):
    """gx from grad g and the forward's indices, gathered per input element. With check_indices
    (indices from the caller), one pass checks them first: out of the plane is a ValueError; off
    their own window (not from this forward) falls back to a per-plane scatter, as the CPU."""
    geom = (*_pool_geom(gx4, g4), *_ints(kernel, "kernel_size"), *_ints(stride, "stride"),
            *_ints(padding, "padding"), *_ints(dilation, "dilation"))
    if check_indices:
        flag = _zeros((1,), np.int32)
        _cuda.launch_1d(_cuda.function("pool", "max_pool_check_indices"), idx4.size, (idx4, flag, *geom))
        bad = int(flag.get()[0])  # one device -> host sync, only for caller-given indices
        if bad == 2:
            raise ValueError(f"indices must lie in [0, input plane size {_prod(gx4.shape[1:])})")
        if bad == 1:
            planes = gx4.shape[0]
            _cuda.launch_1d(_cuda.typed("pool", "max_pool_backward_scatter", g4.dtype), planes,
                            (g4, idx4, gx4, i64(planes), i64(_prod(gx4.shape[1:])), i64(_prod(g4.shape[1:]))))
            return
    _cuda.launch_1d(_cuda.typed("pool", "max_pool_backward", g4.dtype), gx4.size, (g4, idx4, gx4, *geom))


def avg_pool_kernel(x4, y4, kernel, stride, padding, count_include_pad, divisor):
    _cuda.launch_1d(_cuda.typed("pool", "avg_pool_forward", x4.dtype), y4.size,
                    (x4, y4, *_pool_geom(x4, y4), *_ints(kernel, "kernel_size"), *_ints(stride, "stride"),
                     *_ints(padding, "padding"), i32(bool(count_include_pad)), i64(divisor)))


def avg_pool_backward_kernel(g4, gx4, kernel, stride, padding, count_include_pad, divisor):
    _cuda.launch_1d(_cuda.typed("pool", "avg_pool_backward", g4.dtype), gx4.size,
                    (g4, gx4, *_pool_geom(gx4, g4), *_ints(kernel, "kernel_size"), *_ints(stride, "stride"),
                     *_ints(padding, "padding"), i32(bool(count_include_pad)), i64(divisor)))


def adaptive_avg_pool_kernel(x4, y4):
    _cuda.launch_1d(_cuda.typed("pool", "adaptive_avg_pool_forward", x4.dtype), y4.size,
                    (x4, y4, *_pool_geom(x4, y4)))


def adaptive_avg_pool_backward_kernel(g4, gx4):
    _cuda.launch_1d(_cuda.typed("pool", "adaptive_avg_pool_backward", g4.dtype), gx4.size,
                    (g4, gx4, *_pool_geom(gx4, g4)))


# ------------------------------------------------------------------ activations, softmax, maxout


def unary_kernel(op: int, x, y, alpha=0.0):
    _cuda.launch_1d(_cuda.typed("activation", "unary_forward", x.dtype), x.size,
                    (x, y, i64(x.size), i32(op), scalar(alpha, x.dtype)))


def unary_backward_kernel(op: int, x, y, g, gx, alpha=0.0):
    _cuda.launch_1d(_cuda.typed("activation", "unary_backward", g.dtype), g.size,
                    (_arg(x), _arg(y), g, gx, i64(g.size), i32(op), scalar(alpha, g.dtype)))


def softmax_kernel(x, y, outer, dim, inner, log):
    if inner == 1 and dim >= 64:  # one block per row
        _cuda.launch_blocks(_cuda.typed("activation", "softmax_rows", x.dtype), outer,
                            (x, y, i64(outer), i64(dim), i32(bool(log))))
    else:
        _cuda.launch_1d(_cuda.typed("activation", "softmax_columns", x.dtype), outer * inner,
                        (x, y, i64(outer), i64(dim), i64(inner), i32(bool(log))))


def softmax_backward_kernel(y, g, gx, outer, dim, inner, log):
    if inner == 1 and dim >= 64:
        _cuda.launch_blocks(_cuda.typed("activation", "softmax_backward_rows", y.dtype), outer,
                            (y, g, gx, i64(outer), i64(dim), i32(bool(log))))
    else:
        _cuda.launch_1d(_cuda.typed("activation", "softmax_backward_columns", y.dtype), outer * inner,
                        (y, g, gx, i64(outer), i64(dim), i64(inner), i32(bool(log))))


def maxout_kernel(x, y, outer, groups, pieces, inner):
    _cuda.launch_1d(_cuda.typed("activation", "maxout_forward", x.dtype), outer * groups * inner,
                    (x, y, i64(outer), i64(groups), i64(pieces), i64(inner)))


def maxout_backward_kernel(x, g, gx, outer, groups, pieces, inner):
    _cuda.launch_1d(_cuda.typed("activation", "maxout_backward", x.dtype), outer * groups * inner,
                    (x, g, gx, i64(outer), i64(groups), i64(pieces), i64(inner)))


# ------------------------------------------------------------------ interpolate


def interpolate_kernel(x4, y4, mode: str, align_corners: bool, scales):
    """mode: 'nearest', 'nearest-exact' or 'linear'; scales: 3 floats (<= 0: not given)."""
    _cuda.launch_1d(_cuda.typed("interpolate", "interpolate_forward", x4.dtype), y4.size,
                    (x4, y4, *_pool_geom(x4, y4), i32(_core.INTERP_MODES[mode]), i32(bool(align_corners)),
                     *(np.float64(s) for s in scales)))


def interpolate_backward_kernel(g4, gx4, mode: str, align_corners: bool, scales):
    _cuda.launch_1d(_cuda.typed("interpolate", "interpolate_backward", g4.dtype), gx4.size,
                    (g4, gx4, *_pool_geom(gx4, g4), i32(_core.INTERP_MODES[mode]), i32(bool(align_corners)),
                     *(np.float64(s) for s in scales)))


# ------------------------------------------------------------------ batch norm


def batch_norm_stats(x3, eps: float):
    """(mean, biased var, invstd) per channel of a C-contiguous (N, C, S) CuPy array (sums in double)."""
    n, c, s = x3.shape
    m = n * s
    parts = _parts(c, m)
    ws = _empty((c * parts,), np.float64)
    mean_d = _empty((c,), np.float64)
    mean, var, invstd = (_empty((c,), x3.dtype) for _ in range(3))
    geom = (i64(n), i64(c), i64(s), i64(parts))
    red = _cuda.typed("batchnorm", "bn_reduce", x3.dtype)
    _cuda.launch_blocks(red, c * parts, (x3, NULL, NULL, NULL, *geom, i32(0), ws, NULL))
    _cuda.launch_1d(_cuda.function("batchnorm", "bn_finalize_mean"), c, (ws, mean_d, i64(c), i64(parts), i64(m)))
    _cuda.launch_blocks(red, c * parts, (x3, NULL, mean_d, NULL, *geom, i32(1), ws, NULL))
    _cuda.launch_1d(_cuda.typed("batchnorm", "bn_finalize_var", x3.dtype), c,
                    (ws, mean_d, i64(c), i64(parts), i64(m), np.float64(eps), mean, var, invstd))
    return mean, var, invstd


def batch_norm_apply(x3, mean, invstd, w, b, y3):
    n, c, s = x3.shape
    _cuda.launch_1d(_cuda.typed("batchnorm", "bn_apply", x3.dtype), x3.size,
                    (x3, i64(n), i64(c), i64(s), mean, invstd, _arg(w), _arg(b), y3))


def batch_norm_backward_kernel(x3, g3, mean, invstd, w, training, gx3, gw, gb):
    n, c, s = x3.shape
    m = n * s
    parts = _parts(c, m)
    ws = _empty((c * parts,), np.float64)
    ws2 = _empty((c * parts,), np.float64)
    coef = _empty((3 * c,), np.float64)
    _cuda.launch_blocks(_cuda.typed("batchnorm", "bn_reduce", x3.dtype), c * parts,
                        (x3, g3, NULL, mean, i64(n), i64(c), i64(s), i64(parts), i32(2), ws, ws2))
    _cuda.launch_1d(_cuda.typed("batchnorm", "bn_backward_finalize", x3.dtype), c,
                    (ws, ws2, i64(c), i64(parts), i64(m), invstd, _arg(w), i32(bool(training)), _arg(gw), _arg(gb),
                     coef))
    if gx3 is not None:
        _cuda.launch_1d(_cuda.typed("batchnorm", "bn_backward_input", x3.dtype), x3.size,
                        (x3, g3, i64(n), i64(c), i64(s), mean, coef, gx3))


# ------------------------------------------------------------------ DICOM


def dicom_rescale(stored, slope: float = 1.0, intercept: float = 0.0, *, bits_stored=None, window=None,
                  invert: bool = False, out=None):
    """medconv.dicom.rescale on the GPU: stored values (a CuPy int8..uint32 or float32 array) to float32
    modality units, optionally windowed to [0, 1]; the CPU kernel's bits. Arguments as dicom.rescale."""
    from .dicom.window import resolve_window

    x, _ = as_array(stored, "stored", allow_int=True)
    check_gpu(x, "stored", "the call")
    dtype = np.dtype(x.dtype)
    if dtype not in _cuda.DICOM_SUFFIX:
        raise TypeError(f"stored must be int8, uint8, int16, uint16, int32, uint32 or float32, got {dtype}; "
                        "convert it first, e.g. stored.astype(cupy.int32)")
    if bits_stored is None:
        bits = 0
    elif isinstance(bits_stored, numbers.Integral) and not isinstance(bits_stored, bool) \
            and 1 <= bits_stored <= 8 * dtype.itemsize and dtype.kind in "iu":
        bits = int(bits_stored)
    else:
        raise ValueError(f"bits_stored must be None or 1..{8 * dtype.itemsize} for an integer {dtype} array, "
                         f"got {bits_stored!r}")
    for name, value in (("slope", slope), ("intercept", intercept)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    pair = resolve_window(window)
    if invert and pair is None:
        raise ValueError("invert=True needs a window: MONOCHROME1 is inverted for display, never in the modality values")
    x = _c(x)
    y = prepare_out(out, x.shape, np.float32)
    if pair is None:
        mode, low, width_m1 = 0, 0.0, 1.0
    else:
        center, width = pair
        mode, low, width_m1 = (2 if width == 1.0 else 1), center - 0.5, width - 1.0
    if x.size:
        _cuda.launch_1d(_cuda.function("dicom", f"dicom_rescale_{_cuda.DICOM_SUFFIX[dtype]}"), x.size,
                        (x, y, i64(x.size), i32(bits), np.float64(slope), np.float64(intercept), i32(mode),
                         np.float64(low), np.float64(width_m1), i32(bool(invert))))
    return y if out is None else out


# ================================================================== forward ops (after functional's validation)


def conv(nd, x, w, b, stride, pairs, dilation, groups, padding_mode, activation, unbatched, out, src):
    """functional.conv{nd}d on the GPU. x: batched (N, C, *spatial); pairs: (before, after) padding
    per spatial dim; activation: None or 'relu'."""
    check_gpu(w, "weight")
    check_gpu(b, "bias")
    x, w, b = _c(x), _c(w), _c(b)
    if padding_mode != "zeros" and any(lo or hi for lo, hi in pairs):
        x = pad_array(x, [p for pair in reversed(pairs) for p in pair], padding_mode, 0.0)
        pairs = [(0, 0)] * nd
    kernel = tuple(w.shape[2:])
    out_spatial = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                        for size, (lo, hi), k, d, s in zip(x.shape[2:], pairs, kernel, dilation, stride))
    shape = (x.shape[0], w.shape[0]) + out_spatial
    y = prepare_out(None if unbatched else out, shape, x.dtype)
    if y.size:
        one = (1,) * (3 - nd)
        conv_forward(_to5d(x, nd), _to5d(w, nd), b, _to5d(y, nd), one + tuple(stride),
                     (0,) * (3 - nd) + tuple(lo for lo, _ in pairs), one + tuple(dilation), groups,
                     0 if activation is None else 1)
    if unbatched:
        y = y[0]
        if out is not None:
            prepare_out(out, y.shape, y.dtype)[...] = y
    return wrap(y, src, out)


def pad(x, p, mode, value, out, src):
    """functional.pad on the GPU (p: the checked pad list)."""
    return wrap(pad_array(_c(x), p, mode, value, out), src, out)


def max_pool(nd, x, kernel, stride, padding, dilation, osz, return_indices, out, src):
    x = _c(x)
    shape = tuple(x.shape[: x.ndim - nd]) + tuple(osz)
    y = prepare_out(out, shape, x.dtype)
    idx = _empty(shape, np.int64) if return_indices else None
    if y.size:
        max_pool_kernel(_as4d(x, nd), _as4d(y, nd), None if idx is None else _as4d(idx, nd), _pad3(kernel, nd, 1),
                 _pad3(stride, nd, 1), _pad3(padding, nd, 0), _pad3(dilation, nd, 1))
    result = wrap(y, src, out)
    return (result, wrap(idx, src)) if return_indices else result


def avg_pool(nd, x, kernel, stride, padding, osz, count_include_pad, divisor, out, src):
    x = _c(x)
    y = prepare_out(out, tuple(x.shape[: x.ndim - nd]) + tuple(osz), x.dtype)
    if y.size:
        avg_pool_kernel(_as4d(x, nd), _as4d(y, nd), _pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0),
                 count_include_pad, divisor)
    return wrap(y, src, out)


def adaptive_avg_pool(nd, x, osz, out, src):
    x = _c(x)
    y = prepare_out(out, tuple(x.shape[: x.ndim - nd]) + tuple(osz), x.dtype)
    if y.size:
        adaptive_avg_pool_kernel(_as4d(x, nd), _as4d(y, nd))
    return wrap(y, src, out)


def unary(name, input, x, alpha, inplace, out, src):
    """An elementwise activation; inplace writes into x (which must be C-contiguous)."""
    if inplace:
        if out is not None:
            raise ValueError("pass either inplace=True or out=, not both")
        if not x.flags.c_contiguous:
            raise ValueError("inplace=True needs a writeable C-contiguous input")
        y = x
    else:
        x = _c(x)
        y = prepare_out(out, x.shape, x.dtype)
    if x.size:
        unary_kernel(_core.UNARY_OPS[name], x, y, alpha)
    if inplace:
        return input
    return wrap(y, src, out)


def softmax(x, d, log, out, src):
    x = _c(x)
    y = prepare_out(out, x.shape, x.dtype)
    shape = tuple(x.shape) if x.ndim else (1,)
    if x.size:
        softmax_kernel(x, y, _prod(shape[:d]), shape[d], _prod(shape[d + 1:]), log)
    return wrap(y, src, out)


def maxout(x, d, pieces, out, src):
    x = _c(x)
    c = x.shape[d]
    shape = tuple(x.shape[:d]) + (c // pieces,) + tuple(x.shape[d + 1:])
    y = prepare_out(out, shape, x.dtype)
    if y.size:
        maxout_kernel(x, y, _prod(x.shape[:d]), c // pieces, pieces, _prod(x.shape[d + 1:]))
    return wrap(y, src, out)


def linear(x, w, b, out, src):
    """x @ w.T + b with CuPy's matmul (cuBLAS)."""
    check_gpu(w, "weight")
    check_gpu(b, "bias")
    shape = tuple(x.shape[:-1]) + (w.shape[0],)
    y = prepare_out(out, shape, x.dtype)
    if y.size:
        m = _prod(x.shape[:-1])
        y2 = y.reshape(m, w.shape[0])
        if w.shape[1] == 0:
            y2[...] = 0
        else:
            _cp().matmul(_c(x).reshape(m, w.shape[1]), w.T, out=y2)
        if b is not None:
            y2 += b
    return wrap(y, src, out)


# ================================================================== functional.extra ops (full signatures)


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, out):
    from .functional.extra import _conv_transpose_args

    x, src = as_array(input, "input")
    w, _ = as_array(weight, "weight")
    check_gpu(x, "input", "weight")
    check_gpu(w, "weight")
    b, stride, padding, _, groups, dilation, cout, osz = _conv_transpose_args(
        nd, x, w, bias, stride, padding, output_padding, groups, dilation)
    check_gpu(b, "bias")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    x, w, b = _c(x), _c(w), _c(b)
    y = prepare_out(None if unbatched else out, (x.shape[0], cout) + osz, x.dtype)
    if y.size:
        one = (1,) * (3 - nd)
        conv_backward_input(_to5d(x, nd), _to5d(w, nd), _to5d(y, nd), one + stride, (0,) * (3 - nd) + padding,
                            one + dilation, groups, bias=b)
    if unbatched:
        y = y[0]
        if out is not None:
            prepare_out(out, y.shape, y.dtype)[...] = y
    return wrap(y, src, out)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     out=None):
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation, out)


def _interp_scales(nd, scales):
    return (0.0,) * (3 - nd) + (tuple(scales) if scales is not None else (0.0,) * nd)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False, *, out=None):
    from .functional.extra import _interpolate_args

    x, src = as_array(input, "input")
    check_gpu(x, "input", "the call")
    nd, osz, scales, kind, align_corners = _interpolate_args(
        x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if kind == "area":
        return adaptive_avg_pool(nd, x, osz, out, src)
    x = _c(x)
    y = prepare_out(out, tuple(x.shape[:2]) + osz, x.dtype)
    if y.size:
        interpolate_kernel(_as4d(x, nd), _as4d(y, nd), kind, align_corners, _interp_scales(nd, scales))
    return wrap(y, src, out)


def _bn_vector(v, name, c, ref):
    from .functional.extra import _bn_vector as cpu_bn_vector

    if v is not None:
        check_gpu(as_array(v, name)[0], name)
    return cpu_bn_vector(v, name, c, ref)


def _bn_input(x):
    if x.ndim < 2:
        raise ValueError(f"input must have at least 2 dims (N, C, *), got shape {tuple(x.shape)}")
    n, c = x.shape[:2]
    return _c(x).reshape(n, c, _prod(x.shape[2:]))


def _inference_invstd(rv, eps, dtype):
    cp = _cp()
    return (1.0 / cp.sqrt(rv.astype(np.float64) + eps)).astype(dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05, *,
               out=None):
    """functional.batch_norm on the GPU (running statistics updated in place when training)."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, out)[0]


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, out):
    """(output, mean, invstd) as functional.extra._batch_norm: the statistics the backward needs."""
    from .functional._args import check_bool, check_number

    x, src = as_array(input, "input")
    check_gpu(x, "input", "the call")
    x3 = _bn_input(x)
    n, c, s = x3.shape
    training = check_bool(training, "training")
    eps = check_number(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    rm = _bn_vector(running_mean, "running_mean", c, x)
    rv = _bn_vector(running_var, "running_var", c, x)
    w = _bn_vector(weight, "weight", c, x)
    b = _bn_vector(bias, "bias", c, x)
    if training:
        if n * s <= 1:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input shape {tuple(x.shape)}")
        mean, var, invstd = batch_norm_stats(x3, eps)
        if momentum is not None:
            momentum = check_number(momentum, "momentum")
        m = 0.1 if momentum is None else momentum
        if rm is not None:
            rm *= 1 - m
            rm += m * mean
        if rv is not None:
            rv *= 1 - m
            rv += m * var * (n * s / (n * s - 1))
    else:
        if rm is None or rv is None:
            raise ValueError("running_mean and running_var are required when training=False")
        mean = _c(rm)
        invstd = _inference_invstd(rv, eps, x.dtype)
    y = prepare_out(out, x.shape, x.dtype)
    if y.size:
        batch_norm_apply(x3, mean, invstd, _c(w), _c(b), y.reshape(n, c, s))
    return wrap(y, src, out), mean, invstd


# ================================================================== functional.backward ops (full signatures)


def _grad(grad_output, shape, dtype, name="grad_output"):
    g, src = as_array(grad_output, name)
    check_gpu(g, name, "the call")
    if g.dtype != dtype:
        raise TypeError(f"{name} has dtype {g.dtype} but input has dtype {np.dtype(dtype)}; convert one to match")
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(g.shape)}, but the forward output has shape {tuple(shape)}")
    return _c(g), src


def _gpu_input(input, name="input"):
    x, _ = as_array(input, name)
    check_gpu(x, name, "grad_output")
    return x


def pad_backward(grad_output, input, pad, mode="constant", value=None):
    from .functional.pad import PAD_MODES, _check_pad

    if isinstance(input, (tuple, list)):
        shape = tuple(int(s) for s in input)
        dtype = as_array(grad_output, "grad_output")[0].dtype
    else:
        x = _gpu_input(input)
        shape, dtype = tuple(x.shape), x.dtype
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {set(PAD_MODES)}, got {mode!r}")
    p = _check_pad(pad, len(shape), mode, shape)
    out_shape = list(shape)
    for i in range(len(p) // 2):
        out_shape[len(shape) - 1 - i] += p[2 * i] + p[2 * i + 1]
    g, src = _grad(grad_output, out_shape, dtype)
    return wrap(pad_backward_array(g, shape, p, mode), src)


def _conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode, output_mask):
    from .functional._args import check_ndim
    from .functional.backward import _check_mask, _conv_geometry

    x = _gpu_input(input)
    w = _gpu_input(weight, "weight")
    if w.dtype != x.dtype:
        raise TypeError(f"weight has dtype {w.dtype} but input has dtype {x.dtype}; convert one to match")
    check_ndim(w, (nd + 2,), "weight", "out_channels, in_channels/groups, *kernel_size")
    check_ndim(x, (nd + 1, nd + 2), "input", "N, C, *spatial or unbatched C, *spatial")
    need_x, need_w, need_b = _check_mask(output_mask)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    pairs, stride, dilation, groups, osz = _conv_geometry(nd, x, w, stride, padding, dilation, groups, padding_mode)
    oc = w.shape[0]
    out_shape = (x.shape[0], oc) + osz
    g, src = _grad(grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x, w = _c(x), _c(w)
    padded = padding_mode != "zeros" and any(lo or hi for lo, hi in pairs)
    pad_list = [p for pair in reversed(pairs) for p in pair]
    if padded:
        xp = pad_array(x, pad_list, padding_mode, 0.0) if need_w else None
        pad3 = (0, 0, 0)
        padded_shape = tuple(x.shape[:2]) + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pairs))
    else:
        xp = x
        pad3 = (0,) * (3 - nd) + tuple(lo for lo, _ in pairs)
        padded_shape = tuple(x.shape)
    one = (1,) * (3 - nd)
    stride3, dilation3 = one + stride, one + dilation
    gx = gw = gb = None
    if need_x:
        gxp = _empty(padded_shape, x.dtype)
        if gxp.size:
            if g.size:
                conv_backward_input(_to5d(g, nd), _to5d(w, nd), _to5d(gxp, nd), stride3, pad3, dilation3, groups)
            else:
                gxp.fill(0)
        gx = pad_backward_array(gxp, tuple(x.shape), pad_list, padding_mode) if padded else gxp
        if unbatched:
            gx = gx[0]
    if need_w:
        gw = _zeros(w.shape, x.dtype)
        if g.size:
            conv_backward_weight(_to5d(xp, nd), _to5d(g, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = _zeros((oc,), x.dtype)
        if g.size:
            channel_sum(g, gb)
    return _wrap_all(src, gx, gw, gb)


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    return _conv_backward(1, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    return _conv_backward(2, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", *, output_mask=(True, True, True)):
    return _conv_backward(3, grad_output, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def _conv_transpose_backward(nd, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation,
                             output_mask):
    from .functional.backward import _check_mask
    from .functional.extra import _conv_transpose_args

    x = _gpu_input(input)
    w = _gpu_input(weight, "weight")
    need_x, need_w, need_b = _check_mask(output_mask)
    _, stride, padding, _, groups, dilation, cout, osz = _conv_transpose_args(
        nd, x, w, bias, stride, padding, output_padding, groups, dilation)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    out_shape = (x.shape[0], cout) + osz
    g, src = _grad(grad_output, out_shape[1:] if unbatched else out_shape, x.dtype)
    if unbatched:
        g = g[None]
    x, w = _c(x), _c(w)
    one = (1,) * (3 - nd)
    stride3, pad3, dilation3 = one + stride, (0,) * (3 - nd) + padding, one + dilation
    gx = gw = gb = None
    if need_x:  # the transposed conv's input gradient is the conv of grad_output
        gx = _empty(x.shape, x.dtype)
        if gx.size:
            conv_forward(_to5d(g, nd), _to5d(w, nd), None, _to5d(gx, nd), stride3, pad3, dilation3, groups)
        if unbatched:
            gx = gx[0]
    if need_w:  # the conv weight gradient with grad_output as the conv's input
        gw = _zeros(w.shape, x.dtype)
        if g.size and x.size:
            conv_backward_weight(_to5d(g, nd), _to5d(x, nd), _to5d(gw, nd), stride3, pad3, dilation3, groups)
    if need_b and bias is not None:
        gb = _zeros((cout,), x.dtype)
        if g.size:
            channel_sum(g, gb)
    return _wrap_all(src, gx, gw, gb)


def conv_transpose1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    return _conv_transpose_backward(1, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


def conv_transpose2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    return _conv_transpose_backward(2, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


def conv_transpose3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, *, output_mask=(True, True, True)):
    return _conv_transpose_backward(3, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation, output_mask)


def _max_pool_backward(nd, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices):
    from .functional.pool import _window_args

    x = _gpu_input(input)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"input must be {nd + 1}D or {nd + 2}D (N, C, *spatial or C, *spatial), got shape {tuple(x.shape)}")
    kernel, stride, padding, dilation, osz = _window_args(nd, x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = tuple(x.shape[: x.ndim - nd]) + osz
    g, src = _grad(grad_output, shape, x.dtype)
    k3, s3, p3, d3 = _pad3(kernel, nd, 1), _pad3(stride, nd, 1), _pad3(padding, nd, 0), _pad3(dilation, nd, 1)
    if indices is None:
        x = _c(x)
        idx = _empty(shape, np.int64)
        if idx.size:
            max_pool_kernel(_as4d(x, nd), _as4d(_empty(shape, x.dtype), nd), _as4d(idx, nd), k3, s3, p3, d3)
        check = False
    else:
        idx, _ = as_array(indices, "indices", allow_int=True)
        check_gpu(idx, "indices", "grad_output")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array (from return_indices=True), got dtype {idx.dtype}")
        if tuple(idx.shape) != tuple(shape):
            raise ValueError(f"indices has shape {tuple(idx.shape)}, but the forward output has shape {tuple(shape)}")
        idx = _cp().ascontiguousarray(idx, dtype=np.int64)
        check = True
    gx = _empty(x.shape, x.dtype)
    if gx.size:
        if g.size:
            max_pool_backward_kernel(_as4d(g, nd), _as4d(idx, nd), _as4d(gx, nd), k3, s3, p3, d3, check)
        else:
            gx.fill(0)
    return wrap(gx, src)


def max_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    return _max_pool_backward(1, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    return _max_pool_backward(2, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def max_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        indices=None):
    return _max_pool_backward(3, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices)


def _avg_pool_backward(nd, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    from .functional._args import check_bool
    from .functional.pool import _window_args

    x = _gpu_input(input)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"input must be {nd + 1}D or {nd + 2}D (N, C, *spatial or C, *spatial), got shape {tuple(x.shape)}")
    kernel, stride, padding, _, osz = _window_args(nd, x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    if divisor_override is None:
        divisor = 0
    elif isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0:
        raise ValueError(f"divisor_override must be None or a positive int, got {divisor_override!r}")
    else:
        divisor = int(divisor_override)
    g, src = _grad(grad_output, tuple(x.shape[: x.ndim - nd]) + osz, x.dtype)
    gx = _empty(x.shape, x.dtype)
    if gx.size:
        avg_pool_backward_kernel(_as4d(g, nd), _as4d(gx, nd), _pad3(kernel, nd, 1), _pad3(stride, nd, 1),
                          _pad3(padding, nd, 0), count_include_pad, divisor)
    return wrap(gx, src)


def avg_pool1d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    return _avg_pool_backward(1, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    return _avg_pool_backward(2, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def avg_pool3d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    return _avg_pool_backward(3, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def _adaptive_avg_pool_backward(nd, grad_output, input, output_size):
    from .functional._args import int_tuple

    x = _gpu_input(input)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"input must be {nd + 1}D or {nd + 2}D (N, C, *spatial or C, *spatial), got shape {tuple(x.shape)}")
    spatial = tuple(x.shape[x.ndim - nd:])
    if output_size is None:
        g0, _ = as_array(grad_output, "grad_output")
        if g0.ndim != x.ndim:
            raise ValueError(f"grad_output must have input's number of dims {x.ndim}, got shape {tuple(g0.shape)}")
        output_size = tuple(g0.shape[g0.ndim - nd:])
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd} ints or None, got {tuple(output_size)!r}")
        output_size = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    osz = int_tuple(output_size, nd, "output_size", minimum=1)
    if any(s < 1 for s in spatial):
        raise ValueError(f"input spatial dims must be non-empty for adaptive pooling, got shape {tuple(x.shape)}")
    g, src = _grad(grad_output, tuple(x.shape[: x.ndim - nd]) + osz, x.dtype)
    gx = _empty(x.shape, x.dtype)
    if gx.size:
        adaptive_avg_pool_backward_kernel(_as4d(g, nd), _as4d(gx, nd))
    return wrap(gx, src)


def adaptive_avg_pool1d_backward(grad_output, input, output_size=None):
    return _adaptive_avg_pool_backward(1, grad_output, input, output_size)


def adaptive_avg_pool2d_backward(grad_output, input, output_size=None):
    return _adaptive_avg_pool_backward(2, grad_output, input, output_size)


def adaptive_avg_pool3d_backward(grad_output, input, output_size=None):
    return _adaptive_avg_pool_backward(3, grad_output, input, output_size)


def _unary_backward(name, grad_output, input, alpha=0.0, output=None):
    if input is None and output is None:
        raise ValueError("pass the forward's input (or, for sigmoid and tanh, its output=)")
    ref = input if input is not None else output
    r = _gpu_input(ref, "input" if input is not None else "output")
    g, src = _grad(grad_output, r.shape, r.dtype)
    x = _c(r) if input is not None else None
    y = None
    if output is not None:
        y = _gpu_input(output, "output")
        if y.dtype != r.dtype:
            raise TypeError(f"output has dtype {y.dtype} but input has dtype {r.dtype}; convert one to match")
        if y.shape != r.shape:
            raise ValueError(f"output has shape {tuple(y.shape)}, but input has shape {tuple(r.shape)}")
        y = _c(y)
    gx = _empty(r.shape, r.dtype)
    if gx.size:
        unary_backward_kernel(_core.UNARY_OPS[name], x, y, g, gx, alpha)
    return wrap(gx, src)


def relu_backward(grad_output, input):
    return _unary_backward("relu", grad_output, input)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    from .functional._args import check_number

    return _unary_backward("leaky_relu", grad_output, input, check_number(negative_slope, "negative_slope"))


def elu_backward(grad_output, input, alpha=1.0):
    from .functional._args import check_number

    return _unary_backward("elu", grad_output, input, check_number(alpha, "alpha"))


def sigmoid_backward(grad_output, input=None, *, output=None):
    return _unary_backward("sigmoid", grad_output, None if output is not None else input, output=output)


def tanh_backward(grad_output, input=None, *, output=None):
    return _unary_backward("tanh", grad_output, None if output is not None else input, output=output)


def gelu_backward(grad_output, input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be one of {{'none', 'tanh'}}, got {approximate!r}")
    return _unary_backward("gelu" if approximate == "none" else "gelu_tanh", grad_output, input)


def _softmax_backward(grad_output, output, dim, log):
    from .functional._args import normalize_dim

    y = _gpu_input(output, "output")
    if dim is None:
        raise ValueError("dim must be given (the dim the forward used)")
    d = normalize_dim(dim, y.ndim)
    g, src = _grad(grad_output, y.shape, y.dtype)
    y = _c(y)
    shape = tuple(y.shape) if y.ndim else (1,)
    gx = _empty(y.shape, y.dtype)
    if gx.size:
        softmax_backward_kernel(y, g, gx, _prod(shape[:d]), shape[d], _prod(shape[d + 1:]), log)
    return wrap(gx, src)


def softmax_backward(grad_output, output, dim):
    return _softmax_backward(grad_output, output, dim, False)


def log_softmax_backward(grad_output, output, dim):
    return _softmax_backward(grad_output, output, dim, True)


def maxout_backward(grad_output, input, pieces, dim=1):
    from .functional._args import normalize_dim

    x = _gpu_input(input)
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"pieces must be a positive int, got {pieces!r}")
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dim for maxout")
    d = normalize_dim(dim, x.ndim)
    c = x.shape[d]
    if c % pieces:
        raise ValueError(f"input has {c} channels along dim {d} (shape {tuple(x.shape)}), not divisible by pieces={pieces}")
    shape = tuple(x.shape[:d]) + (c // pieces,) + tuple(x.shape[d + 1:])
    g, src = _grad(grad_output, shape, x.dtype)
    x = _c(x)
    gx = _empty(x.shape, x.dtype)
    if gx.size:
        maxout_backward_kernel(x, g, gx, _prod(x.shape[:d]), c // pieces, int(pieces), _prod(x.shape[d + 1:]))
    return wrap(gx, src)


def linear_backward(grad_output, input, weight, bias=None, *, output_mask=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of linear with CuPy's matmul (cuBLAS)."""
    from .functional.backward import _check_mask

    x = _gpu_input(input)
    w = _gpu_input(weight, "weight")
    if w.dtype != x.dtype:
        raise TypeError(f"weight has dtype {w.dtype} but input has dtype {x.dtype}; convert one to match")
    need_x, need_w, need_b = _check_mask(output_mask)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"input's last dim must equal in_features={w.shape[1]} (weight shape {tuple(w.shape)}), "
                         f"got input shape {tuple(x.shape)}")
    n_out, k = w.shape
    g, src = _grad(grad_output, tuple(x.shape[:-1]) + (n_out,), x.dtype)
    m = _prod(x.shape[:-1])
    g2 = g.reshape(m, n_out)
    cp = _cp()
    gx = gw = gb = None
    if need_x:
        gx = _zeros(x.shape, x.dtype)
        if gx.size and n_out:
            cp.matmul(g2, _c(w), out=gx.reshape(m, k))
    if need_w:
        gw = _zeros(w.shape, x.dtype)
        if m and n_out and k:
            cp.matmul(g2.T, _c(x).reshape(m, k), out=gw)
    if need_b and bias is not None:
        gb = _zeros((n_out,), x.dtype)
        if m and n_out:
            channel_sum(g2.reshape(m, n_out, 1), gb)
    return _wrap_all(src, gx, gw, gb)


def interpolate_backward(grad_output, input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                         recompute_scale_factor=None, antialias=False):
    from .functional.extra import _interpolate_args

    if isinstance(input, (tuple, list)):
        g0 = _gpu_input(grad_output, "grad_output")
        shape = tuple(int(s) for s in input)
        x = _cp().empty(shape, g0.dtype)
    else:
        x = _gpu_input(input)
    nd, osz, scales, kind, align_corners = _interpolate_args(
        x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if kind == "area":
        return _adaptive_avg_pool_backward(nd, grad_output, x, osz)
    g, src = _grad(grad_output, tuple(x.shape[:2]) + osz, x.dtype)
    gx = _empty(x.shape, x.dtype)
    if gx.size:
        interpolate_backward_kernel(_as4d(g, nd), _as4d(gx, nd), kind, align_corners, _interp_scales(nd, scales))
    return wrap(gx, src)


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-05, *, save_mean=None, save_invstd=None,
                        output_mask=(True, True, True)):
    from .functional._args import check_bool, check_number
    from .functional.backward import _check_mask

    x = _gpu_input(input)
    x3 = _bn_input(x)
    n, c, s = x3.shape
    training = check_bool(training, "training")
    eps = check_number(eps, "eps")
    need_x, need_w, need_b = _check_mask(output_mask)
    w = _bn_vector(weight, "weight", c, x)
    if save_mean is not None and save_invstd is not None:  # the forward's statistics, as on the CPU
        mean = _c(_bn_vector(save_mean, "save_mean", c, x))
        invstd = _c(_bn_vector(save_invstd, "save_invstd", c, x))
    elif training:
        mean, _, invstd = batch_norm_stats(x3, eps)
    else:
        rm = _bn_vector(running_mean, "running_mean", c, x)
        rv = _bn_vector(running_var, "running_var", c, x)
        if rm is None or rv is None:
            raise ValueError("running_mean and running_var are required when training=False")
        mean = _c(rm)
        invstd = _inference_invstd(rv, eps, x.dtype)
    g, src = _grad(grad_output, x.shape, x.dtype)
    gx = _empty(x.shape, x.dtype) if need_x else None
    gw = _zeros((c,), x.dtype) if need_w and w is not None else None
    gb = _zeros((c,), x.dtype) if need_b and bias is not None else None
    if x.size:
        batch_norm_backward_kernel(x3, g.reshape(n, c, s), mean, invstd, _c(w), training,
                                   None if gx is None else gx.reshape(n, c, s), gw, gb)
    return _wrap_all(src, gx, gw, gb)


# ================================================================== dropout


def native_dropout(input, p=0.5, train=True, *, generator=None):
    """functional.native_dropout on the GPU: the keep mask is drawn on the host from `generator` (the
    CPU's mask for the same generator state, so a seed reproduces a CPU run) and copied to the GPU."""
    from .functional._args import check_bool
    from .functional.extra import _check_p

    x, src = as_array(input, "input")
    check_gpu(x, "input", "the call")
    p = _check_p(p)
    if not check_bool(train, "train") or p == 0.0:
        return wrap(x.copy(), src), wrap(_cp().ones(x.shape, dtype=bool), src)
    rng = generator if generator is not None else np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(rng).__name__}")
    keep = rng.random(x.shape, dtype=np.float64) >= p if p < 1.0 else np.zeros(x.shape, dtype=bool)
    keep = _cp().asarray(keep)
    y = x * keep  # float * bool keeps x's dtype
    y *= x.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return wrap(y, src), wrap(keep, src)


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):
    """functional.dropout on the GPU (the mask as native_dropout's)."""
    from .functional._args import check_bool
    from .functional.extra import _check_p

    x, src = as_array(input, "input")
    check_gpu(x, "input", "the call")
    p = _check_p(p)
    if not check_bool(training, "training"):
        return input
    y, _ = native_dropout(x, p, True, generator=generator)
    if check_bool(inplace, "inplace"):
        x[...] = y
        return input
    return wrap(y, src)


def dropout_backward(grad_output, mask, p=0.5):
    """functional.backward.dropout_backward on the GPU: grad_output * mask / (1 - p)."""
    from .functional._args import check_number

    g, src = as_array(grad_output, "grad_output")
    check_gpu(g, "grad_output", "the call")
    k = mask
    if not _cuda.is_cupy(k) and hasattr(k, "__dlpack__") and _on_cuda(k):  # a torch CUDA bool mask
        k = _cp().from_dlpack(k)
    check_gpu(k, "mask", "grad_output")
    if tuple(k.shape) != tuple(g.shape):
        raise ValueError(f"mask has shape {tuple(k.shape)}, grad_output has shape {tuple(g.shape)}")
    p = check_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    gx = g * k.astype(g.dtype)
    gx *= g.dtype.type(0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return wrap(gx, src)


#: medconv.functional.backward's names, on the GPU (same signatures)
BACKWARD = (
    "conv1d_backward", "conv2d_backward", "conv3d_backward",
    "conv_transpose1d_backward", "conv_transpose2d_backward", "conv_transpose3d_backward",
    "pad_backward",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "relu_backward", "leaky_relu_backward", "elu_backward", "sigmoid_backward", "tanh_backward", "gelu_backward",
    "softmax_backward", "log_softmax_backward", "maxout_backward", "linear_backward",
    "interpolate_backward", "batch_norm_backward", "dropout_backward",
)
