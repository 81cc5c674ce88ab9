"""The kernel calls of functional.backward and functional.extra, with one set of signatures on two
devices. An op validates its arguments and computes its shapes once, then allocates, calls kernels,
checks devices and wraps results through `kernels(gpu)`: CPU for numpy arrays (medconv._core's
bindings), GPU for CuPy arrays (medconv._gpu's kernel layer). Arrays handed to the kernels are
C-contiguous, in the views _core's bindings take: (N, C, D, H, W) for convolutions, (planes, D, H, W)
for pooling and interpolation, (N, C, S) for batch norm."""
from __future__ import annotations

import numpy as np

from .. import _backend, _core, _cuda, _gpu
from .pad import pad_array as _pad_array


class CPU:
    """numpy arrays on medconv._core."""

    prepare_out = staticmethod(_backend.prepare_out)
    wrap = staticmethod(_backend.wrap)
    conv_forward = staticmethod(_core.conv_forward)
    conv_backward_input = staticmethod(_core.conv_backward_input)
    conv_backward_weight = staticmethod(_core.conv_backward_weight)
    conv_transpose_forward = staticmethod(_core.conv_transpose_forward)
    channel_sum = staticmethod(_core.channel_sum)
    pad_array = staticmethod(_pad_array)
    pad_backward = staticmethod(_core.pad_backward)
    max_pool = staticmethod(_core.max_pool)
    avg_pool_backward = staticmethod(_core.avg_pool_backward)
    adaptive_avg_pool_backward = staticmethod(_core.adaptive_avg_pool_backward)
    unary_backward = staticmethod(_core.unary_backward)
    softmax_backward = staticmethod(_core.softmax_backward)
    maxout_backward = staticmethod(_core.maxout_backward)
    interpolate = staticmethod(_core.interpolate)
    interpolate_backward = staticmethod(_core.interpolate_backward)
    batch_norm_apply = staticmethod(_core.batch_norm_apply)
    batch_norm_backward = staticmethod(_core.batch_norm_backward)
    linear_backward_input = staticmethod(_core.linear_backward_input)

    @staticmethod
    def check_device(arr, name, ref_name="input"):
        """Nothing: on the CPU path a GPU array is refused by same_dtype, with its own message."""

    @staticmethod
    def empty(shape, dtype):
        """From the output cache (memory.h), as the forward ops' results: a gradient as large as an
        activation would otherwise pay its page faults again on every training step."""
        return _core.empty(shape, np.dtype(dtype))

    @staticmethod
    def zeros(shape, dtype):
        a = _core.empty(shape, np.dtype(dtype))
        a.fill(0)
        return a

    @staticmethod
    def ones(shape, dtype):
        return np.ones(shape, dtype=dtype)

    @staticmethod
    def from_host(a):
        return a

    @staticmethod
    def mask(mask):
        return mask if isinstance(mask, np.ndarray) else np.asarray(mask)

    @staticmethod
    def masked(a, keep):
        """a * keep in a's dtype."""
        return np.multiply(a, keep, dtype=a.dtype)

    @staticmethod
    def index_array(idx):
        return np.ascontiguousarray(idx, dtype=np.int64)

    @staticmethod
    def inference_invstd(rv, eps, dtype):
        return _core.batch_norm_invstd(_backend.contiguous(rv), eps).astype(dtype, copy=False)

    @staticmethod
    def max_pool_backward(g4, idx4, gx4, kernel, stride, padding, dilation, check_indices):
        """gx from grad g and the forward's indices (plane offsets); _core needs no window and
        checks the indices itself."""
        planes = gx4.shape[0]
        _core.max_pool_backward(g4.reshape(planes, -1), idx4.reshape(planes, -1), gx4.reshape(planes, -1))

    @staticmethod
    def linear_backward_weight(g2, x2, gw, gb):
        """gw = g2^T @ x2, gb = g2's column sums; either may be None (_core computes both)."""
        if gw is None:
            gw = np.zeros((g2.shape[1], x2.shape[1]), g2.dtype)
        _core.linear_backward_weight(g2, x2, gw, gb)

    @staticmethod
    def batch_stats(x3, eps):
        """(mean, biased var, invstd) per channel of (N, C, S)."""
        c = x3.shape[1]
        mean, var, invstd = (np.empty(c, x3.dtype) for _ in range(3))
        _core.batch_norm_stats(x3, mean, var, invstd, eps)
        return mean, var, invstd


class GPU:
    """CuPy arrays on medconv._gpu's kernel layer (CUDA tensors are read as CuPy arrays by as_array)."""

    prepare_out = staticmethod(_gpu.prepare_out)
    wrap = staticmethod(_gpu.wrap)
    check_device = staticmethod(_gpu.check_gpu)
    empty = staticmethod(_gpu._empty)
    zeros = staticmethod(_gpu._zeros)
    conv_forward = staticmethod(_gpu.conv_forward)
    conv_backward_input = staticmethod(_gpu.conv_backward_input)
    conv_backward_weight = staticmethod(_gpu.conv_backward_weight)
    channel_sum = staticmethod(_gpu.channel_sum)
    pad_array = staticmethod(_gpu.pad_array)
    pad_backward = staticmethod(_gpu.pad_backward_kernel)
    max_pool = staticmethod(_gpu.max_pool_kernel)
    avg_pool_backward = staticmethod(_gpu.avg_pool_backward_kernel)
    adaptive_avg_pool_backward = staticmethod(_gpu.adaptive_avg_pool_backward_kernel)
    unary_backward = staticmethod(_gpu.unary_backward_kernel)
    softmax_backward = staticmethod(_gpu.softmax_backward_kernel)
    maxout_backward = staticmethod(_gpu.maxout_backward_kernel)
    interpolate = staticmethod(_gpu.interpolate_kernel)
    interpolate_backward = staticmethod(_gpu.interpolate_backward_kernel)
    batch_stats = staticmethod(_gpu.batch_norm_stats)
    batch_norm_apply = staticmethod(_gpu.batch_norm_apply)
    batch_norm_backward = staticmethod(_gpu.batch_norm_backward_kernel)

    @staticmethod
    def ones(shape, dtype):
        return _cuda.cupy().ones(shape, dtype=dtype)

    @staticmethod
    def from_host(a):
        return _cuda.cupy().asarray(a)

    @staticmethod
    def mask(mask):
        """A torch CUDA (bool) mask is read through DLPack."""
        if not _cuda.is_cupy(mask) and hasattr(mask, "__dlpack__") and _backend._on_cuda(mask):
            return _cuda.cupy().from_dlpack(mask)
        return mask

    @staticmethod
    def masked(a, keep):
        return a * keep.astype(a.dtype)

    @staticmethod
    def index_array(idx):
        return _cuda.cupy().ascontiguousarray(idx, dtype=np.int64)

    @staticmethod
    def inference_invstd(rv, eps, dtype):
        return (1.0 / _cuda.cupy().sqrt(rv.astype(np.float64) + eps)).astype(dtype)

    @staticmethod
    def conv_transpose_forward(x, w, b, y, stride, pad, dilation, groups):
        """The transposed conv is the input gradient of the conv, plus the bias."""
        _gpu.conv_backward_input(x, w, y, stride, pad, dilation, groups, bias=b)

    @staticmethod
    def max_pool_backward(g4, idx4, gx4, kernel, stride, padding, dilation, check_indices):
        if g4.size:
            _gpu.max_pool_backward_kernel(g4, idx4, gx4, kernel, stride, padding, dilation, check_indices)
        else:
            gx4.fill(0)

    @staticmethod
    def linear_backward_input(g2, w, gx2):
        _cuda.cupy().matmul(g2, w, out=gx2)

    @staticmethod
    def linear_backward_weight(g2, x2, gw, gb):
        """CuPy's matmul (cuBLAS) and the deterministic channel sum."""
        if gw is not None and x2.shape[1]:
            _cuda.cupy().matmul(g2.T, x2, out=gw)
        if gb is not None:
            _gpu.channel_sum(g2.reshape(g2.shape[0], g2.shape[1], 1), gb)


def kernels(gpu: bool):
    """The kernel namespace of an op whose arrays are on the GPU (`gpu`) or on the CPU."""
    return GPU if gpu else CPU
