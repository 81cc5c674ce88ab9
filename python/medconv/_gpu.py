"""GPU implementations of medconv's ops: CuPy arrays in, CuPy arrays out (CUDA tensors read through
DLPack come back as tensors of the same kind), on medconv's own CUDA kernels (cuda/*.cu, see
_cuda.py).

Two layers:
- kernel calls with the signatures of medconv._core's bindings (`conv_forward(x, w, b, y, stride,
  pad, dilation, groups, act)`, ...), on C-contiguous CuPy arrays whose shapes are already checked.
  The ops of functional.extra and functional.backward call them themselves, through
  functional._kernels (one op body for both devices);
- ops. The forward ops of medconv.functional (conv, pad, pools, activations, softmax, maxout,
  linear) come here after functional's own validation, with its validated arguments.

Mixing a CPU array with a GPU one is a TypeError; results are written by one thread per
element with sums in a fixed order (no float atomics), so a device gives the same bits every run.
"""
from __future__ import annotations

import functools
import math
import numbers
import os
import sys

import numpy as np

from . import _core, _cuda
from ._backend import Source, as_array
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


#: "auto" picks the forward GEMM's tiles by shape; "tiled" keeps to the 16x16-thread tiles (bn16/32/64),
#: "wide" takes the wide tiles of 128 rows wherever they apply (for comparing them)
GEMM_TILES = os.environ.get("MEDCONV_GPU_GEMM", "auto")
_taps: dict = {}


def _wide_tile(xs, ws, ys, pad, dilation, groups):
    """(BM, BN) of the wide-tile forward GEMM for this conv (5-D shapes), or None where the 16x16-thread
    tiles run it (few columns, tap offsets or coordinates past 31 bits, a grid CUDA cannot hold)."""
    ocg, cg = ws[0] // groups, ws[1]
    if GEMM_TILES == "tiled" or ocg <= 16:
        return None
    d, h, w = xs[2:]
    reach = [(k - 1) * dl for k, dl in zip(ws[2:], dilation)]
    last_tap = (cg - 1) * d * h * w + (reach[0] * h + reach[1]) * w + reach[2]
    rows = xs[0] * _prod(ys[2:])
    if (last_tap > _cuda.INT32_MAX or max(xs[2:]) + 2 * max(pad) + max(reach) > 2**30
            or groups > _cuda.GRID_YZ_MAX or math.ceil(rows / 64) > _cuda.INT32_MAX):
        return None
    widths = [bn for bn in (128, 64, 32) if bn < 2 * ocg][:2]  # the tile that covers the columns, and half of it
    if GEMM_TILES == "wide":
        return 128, widths[0]
    # 128 rows a block where that still gives every SM a block (the wider tile first); else 64
    sms = _cuda.sm_count()
    for bm in (128, 64):
        for bn in widths:
            if math.ceil(rows / bm) * math.ceil(ocg / bn) * groups >= sms:
                return bm, bn
    return 64, widths[-1]


def _conv_taps(ws, xs, dilation):
    """The wide GEMM's table: for each reduction index k = (ic, kd, kh, kw), the offset of its tap in
    one image's group of x, and kd*dd, kh*dh, kw*dw (int32 [Cg*KD*KH*KW, 4] on the device, cached)."""
    cg, kd, kh, kw = ws[1:]
    d, h, w = xs[2:]
    key = (_cuda.device_id(), cg, kd, kh, kw, *dilation, d, h, w)
    table = _taps.get(key)
    if table is None:
        ic, a, b, c = np.meshgrid(np.arange(cg), np.arange(kd) * dilation[0], np.arange(kh) * dilation[1],
                                  np.arange(kw) * dilation[2], indexing="ij")
        host = np.stack([ic * (d * h * w) + (a * h + b) * w + c, a, b, c], axis=-1).reshape(-1, 4)
        if len(_taps) >= 64:
            _taps.clear()
        table = _taps[key] = _cp().asarray(host.astype(np.int32))
    return table


_HALO_BYTES = 16384  # MC_HALO_BYTES in conv.cu
_HALO_TILE_WIDTHS = (32, 16, 64, 128, 256)  # the tiled direct kernels' tile widths, preferred first


@functools.lru_cache(maxsize=1024)
def _direct_tiles(ys, ws, stride, dilation, groups, itemsize):
    """(grid, tile width, output rows per thread) of the tiled direct kernels: of the tiles whose
    staged input fits MC_HALO_BYTES, the one whose tiles cover the fewest output positions (then the
    one with the most rows per thread); None when none fits, or when the grid exceeds CUDA's limits.
    Cached per shape (tuples): the search costs ~10 us, half of a 512x512 filter's kernel time."""
    n, _, od, oh, ow = ys
    kh, kw = ws[3:]
    best, best_covered = None, 0
    for rows_per_thread in (4, 2, 1):
        for tile_w in _HALO_TILE_WIDTHS:
            tile_h = _cuda.THREADS // tile_w * rows_per_thread
            rows = (tile_h - 1) * stride[1] + (kh - 1) * dilation[1] + 1
            cols = (tile_w - 1) * stride[2] + (kw - 1) * dilation[2] + 1
            tiles = math.ceil(oh / tile_h) * math.ceil(ow / tile_w)
            covered = tiles * tile_h * tile_w
            if rows * cols * itemsize <= _HALO_BYTES and (best is None or covered < best_covered):
                best, best_covered = ((tiles * od, groups, n), tile_w, rows_per_thread), covered
    if best is None or best[0][0] > _cuda.INT32_MAX or max(best[0][1:]) > _cuda.GRID_YZ_MAX:
        return None
    return best


def conv_forward(x, w, b, y, stride, pad, dilation, groups, act=0):
    """y = conv(x, w) + b (act 1: ReLU fused); 5-D C-contiguous CuPy arrays, pad = leading zeros."""
    args = _conv_args(x.shape, w.shape, y.shape, stride, pad, dilation, groups)
    n, oc = x.shape[0], w.shape[0]
    ocg = oc // groups
    rows = n * _prod(y.shape[2:])
    tile, bm, bn = _tile(ocg)
    grid = (math.ceil(rows / bm), math.ceil(ocg / bn), groups)
    tiled = (_direct_tiles(tuple(y.shape), tuple(w.shape), tuple(stride), tuple(dilation), groups, x.dtype.itemsize)
             if ocg <= 4 else None)
    if tiled:
        tile_grid, tile_w, rows_per_thread = tiled
        kernel = f"conv_direct_tiled_forward_oc{1 if ocg == 1 else 4}_rows{rows_per_thread}"
        _cuda.launch_grid(_cuda.typed("conv", kernel, x.dtype), tile_grid,
                          (x, w, _arg(b), y, *args, i32(act), i32(tile_w)), "conv forward")
    elif ocg <= 4 or grid[0] > _cuda.INT32_MAX or max(grid[1:]) > _cuda.GRID_YZ_MAX:
        _cuda.launch_1d(_cuda.typed("conv", "conv_direct_forward", x.dtype),
                        n * groups * math.ceil(ocg / 4) * _prod(y.shape[2:]),
                        (x, w, _arg(b), y, *args, i32(act)))
    elif wide := _wide_tile(x.shape, w.shape, y.shape, pad, dilation, groups):
        bm, bn = wide
        wide_grid = (math.ceil(rows / bm), math.ceil(ocg / bn), groups)
        _cuda.launch_grid(_cuda.typed("conv", f"conv_gemm_wide_forward_m{bm}n{bn}", x.dtype), wide_grid,
                          (x, w, _arg(b), _conv_taps(w.shape, x.shape, dilation), y, *args, i32(act)),
                          "conv forward")
    else:
        _cuda.launch_grid(_cuda.typed("conv", f"conv_gemm_forward_{tile}", x.dtype), grid,
                          (x, w, _arg(b), y, *args, i32(act)), "conv forward")


def _flipped_transposed(w, groups):
    """w [OC, Cg, K...] -> [C, OCg, K...] with the taps reversed: the forward conv of gy with it (stride
    1, leading padding dilation*(K-1) - padding) is the input gradient."""
    oc, cg = w.shape[:2]
    k = tuple(w.shape[2:])
    g = w.reshape((groups, oc // groups, cg) + k)[..., ::-1, ::-1, ::-1].transpose(0, 2, 1, 3, 4, 5)
    return _cp().ascontiguousarray(g).reshape((groups * cg, oc // groups) + k)


def conv_backward_input(gy, w, gx, stride, pad, dilation, groups, bias=None):
    """gx = the input gradient of conv(x of gx's shape, w) given gy (+ bias: the transposed conv)."""
    flipped_pad = tuple(d * (k - 1) - p for d, k, p in zip(dilation, w.shape[2:], pad))
    if (all(s == 1 for s in stride) and min(flipped_pad) >= 0
            and _wide_tile(gy.shape, (gx.shape[1], w.shape[0] // groups) + tuple(w.shape[2:]), gx.shape, flipped_pad,
                           dilation, groups)):
        conv_forward(gy, _flipped_transposed(w, groups), bias, gx, stride, flipped_pad, dilation, groups)
        return
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


def pad_backward_kernel(g4, gx4, before, after, mode: int):
    """gx4 (outer, D, H, W) = the gradient of padding it by before / after (per D, H, W; mode:
    _core.PAD_MODES' value) given the padded output's gradient g4 (outer, D', H', W')."""
    _cuda.launch_1d(_cuda.typed("pad", "pad_backward", g4.dtype), gx4.size,
                    (g4, gx4, *(i64(t) for t in gx4.shape), *(i64(b) for b in before),
                     *(i64(o) for o in g4.shape[1:]), i32(mode)))


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


def interpolate_kernel(x4, y4, mode: int, align_corners: bool, scales):
    """mode: _core.INTERP_MODES' value of 'nearest', 'nearest-exact' or 'linear'; scales: 3 floats
    (<= 0: not given)."""
    _cuda.launch_1d(_cuda.typed("interpolate", "interpolate_forward", x4.dtype), y4.size,
                    (x4, y4, *_pool_geom(x4, y4), i32(mode), i32(bool(align_corners)),
                     *(np.float64(s) for s in scales)))


def interpolate_backward_kernel(g4, gx4, mode: int, align_corners: bool, scales):
    _cuda.launch_1d(_cuda.typed("interpolate", "interpolate_backward", g4.dtype), gx4.size,
                    (g4, gx4, *_pool_geom(gx4, g4), i32(mode), i32(bool(align_corners)),
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
