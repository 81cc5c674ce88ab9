"""Pools and pad with outputs of 8 MiB and more (the size from which medconv's conv, activation and
softmax kernels write with streaming stores): the right values into fresh, caller-owned and
misaligned arrays, on 1 and 3 threads. References are plain numpy (strided window views). The
streaming kernels write the same bits into out= arrays at every alignment."""
import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
import reference as R
from conftest import assert_close


def _windows(x, k, s, p, fill):
    """The k x k windows (stride s, padding p filled with `fill`) of x's last two dims, stacked first."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    oh, ow = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    return np.stack([xp[:, :, i:i + s * oh:s, j:j + s * ow:s] for i in range(k) for j in range(k)])


@pytest.fixture
def threads():
    before = mc.get_num_threads()
    yield
    mc.set_num_threads(before)


def _each_way(op, expected, threads):
    """op(out=None) and op(out=...) into a misaligned array, on 1 and 3 threads, all equal to expected."""
    first = op(None)
    assert_close(first, expected, dtype=first.dtype)
    assert first.nbytes >= 8 << 20
    out = np.empty(first.size + 1, first.dtype)[1:].reshape(first.shape)
    for t in (1, 3):
        mc.set_num_threads(t)
        np.testing.assert_array_equal(op(None), first)
        op(out)
        np.testing.assert_array_equal(out, first)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool2d(rng, isa, threads, k, s, p):
    x = rng.standard_normal((2, 8, 730 if s == 2 else 370, 740 if s == 2 else 366)).astype(np.float32)
    expected = _windows(x, k, s, p, -np.inf).max(axis=0)
    _each_way(lambda out: F.max_pool2d(x, k, s, p, out=out), expected, threads)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1)])
def test_avg_pool2d(rng, isa, threads, k, s, p):
    x = rng.standard_normal((2, 8, 730, 740)).astype(np.float32)
    expected = _windows(x, k, s, p, 0.0).mean(axis=0)  # count_include_pad=True
    _each_way(lambda out: F.avg_pool2d(x, k, s, p, out=out), expected, threads)


def test_max_pool3d(rng, isa, threads):
    x = rng.standard_normal((1, 8, 34, 260, 250)).astype(np.float32)
    planes = x.reshape(1, 8, 17, 2, 130, 2, 125, 2)
    expected = planes.max(axis=(3, 5, 7))
    _each_way(lambda out: F.max_pool3d(x, 2, 2, out=out), expected, threads)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pad(rng, isa, threads, mode, dtype):
    x = rng.standard_normal((2, 16, 255, 253) if dtype == np.float32 else (2, 8, 255, 253)).astype(dtype)
    pad = (1, 2, 3, 1)
    kw = dict(value=0.5) if mode == "constant" else {}
    expected = R.pad(x, pad, mode, **kw)
    _each_way(lambda out: F.pad(x, pad, mode=mode, out=out, **kw), expected, threads)


def _out_at(shape, dtype, offset):
    """An uninitialised array whose data starts `offset` bytes past a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size + 128 // itemsize, dtype)
    skip = ((64 - raw.ctypes.data % 64) % 64 + offset) // itemsize
    out = raw[skip:skip + size].reshape(shape)
    assert out.ctypes.data % 64 == offset
    return out


def _same_bits_at_every_alignment(f, first, what):
    """f(out) into arrays 0, 16, 32 and 4 bytes past 64, on 1 and 3 threads: first's bits each time."""
    for t in (1, 3):
        mc.set_num_threads(t)
        for offset in (0, 16, 32, 4):
            out = _out_at(first.shape, first.dtype, offset)
            f(out)
            np.testing.assert_array_equal(out, first, err_msg=f"{what}, out= at {offset} bytes past 64, {t} threads")


@pytest.mark.parametrize("op", ["relu", "sigmoid", "softmax", "log_softmax", "depthwise", "first_layer", "head",
                                "batch_norm"])
def test_streamed_outputs_at_every_alignment(rng, isa, threads, op):
    """32-byte aligned rows take 32-byte streaming stores, 16-byte aligned ones (numpy's own large
    arrays) 16-byte ones, others plain stores: the same bits each way."""
    if op == "batch_norm":  # eval mode: x * scale + shift per channel, rows of 16637 floats
        x = rng.standard_normal((8, 16, 127, 131)).astype(np.float32)
        stats = [rng.standard_normal(16).astype(np.float32) for _ in range(3)] + [rng.random(16).astype(np.float32) + 0.5]
        f = lambda out: F.batch_norm(x, stats[0], stats[3], stats[1], stats[2], training=False, out=out)  # noqa: E731
    elif op == "head":  # a segmentation head: 1x1, 18 channels to 7 (cpp/conv_pointwise_avx2.cpp)
        x = rng.standard_normal((2, 18, 390, 403)).astype(np.float32)
        w = rng.standard_normal((7, 18, 1, 1)).astype(np.float32)
        b = rng.standard_normal(7).astype(np.float32)
        f = lambda out: F.conv2d(x, w, b, out=out)  # noqa: E731
    elif op in ("depthwise", "first_layer"):
        x = rng.standard_normal((4, 32, 128, 128) if op == "depthwise" else (8, 1, 128, 128)).astype(np.float32)
        w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(32).astype(np.float32)
        groups = 32 if op == "depthwise" else 1
        f = lambda out: F.conv2d(x, w, b, padding=1, groups=groups, out=out)  # noqa: E731
    else:
        x = (rng.standard_normal((2560, 1000)) * 4).astype(np.float32)
        g = getattr(F, op)
        f = (lambda out: g(x, 1, out=out)) if "softmax" in op else (lambda out: g(x, out=out))
    first = f(None)
    assert first.nbytes >= 8 << 20
    _same_bits_at_every_alignment(f, first, op)


@pytest.mark.parametrize("output_padding", [0, (0, 1)])
def test_up_conv_whose_windows_tile_the_output(rng, isa, threads, output_padding):
    """A U-Net decoder's 2x2 stride-2 up-conv (cpp/conv_subpixel.h) into 9 MB: its rows interleaved
    and streamed, rows of 132 inputs (not a multiple of 8) and a column past the last window; against
    a plain einsum, then the same bits at every alignment of out= and on 1 and 3 threads."""
    x = rng.standard_normal((2, 24, 128, 132)).astype(np.float32)
    w = rng.standard_normal((24, 16, 2, 2)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    tiles = np.einsum("nkhw,kcab->nchawb", x.astype(np.float64), w.astype(np.float64)).reshape(2, 16, 256, 264)
    extra = (0, 0) if output_padding == 0 else output_padding
    expected = np.zeros((2, 16, 256 + extra[0], 264 + extra[1]))
    expected[:, :, :256, :264] = tiles
    expected += b[None, :, None, None]
    f = lambda out: F.conv_transpose2d(x, w, b, stride=2, output_padding=output_padding, out=out)  # noqa: E731
    first = f(None)
    assert first.nbytes >= 8 << 20
    assert_close(first, expected, dtype=np.float32, scale=4)
    _same_bits_at_every_alignment(f, first, "up-conv")
