"""The direct convolution kernels (forced with MEDCONV_CONV_ALGO=direct) against the numpy reference:
the row-blocked kernel for stride-1 undilated 3x3 / 5x5 / 7x7 rows and the general one for the rest,
over random shapes (narrow, ragged and wide rows, 2D and 3D, groups, depthwise), fused ReLU, outputs
large enough to be streamed past the caches, misaligned `out=` arrays and 1-3 threads."""
import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
import reference as R
from conftest import assert_close, same_bits_at_thread_counts, torch_conv
from medconv import _core


@pytest.fixture
def direct(monkeypatch):
    _core.clear_conv_plans()
    monkeypatch.setenv("MEDCONV_CONV_ALGO", "direct")
    yield
    monkeypatch.delenv("MEDCONV_CONV_ALGO", raising=False)
    _core.clear_conv_plans()


def _case(rng, nd, k):
    groups = int(rng.integers(1, 4))
    cg, ocg = int(rng.integers(1, 4)), int(rng.choice([1, 2, 5]))
    spatial = [int(rng.integers(1, 12))] if nd == 3 else []
    spatial += [int(rng.integers(1, 30)), int(rng.choice([1, 5, 8, 13, 16, 31, 40]))]
    x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups, *spatial)).astype(np.float32)
    wshape = (ocg * groups, cg) + ((int(rng.choice([1, 3])),) if nd == 3 else ()) + (k, k)
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(ocg * groups).astype(np.float32)
    pad = [int(rng.integers(0, k + 1)) for _ in range(nd)]
    kw = dict(padding=tuple(pad), groups=groups)
    if nd == 3 and rng.random() < 0.5:  # depth strides and dilations keep the rows stride-1
        kw.update(stride=(int(rng.integers(1, 3)), 1, 1), dilation=(int(rng.integers(1, 3)), 1, 1))
    sizes = [s + 2 * p for s, p in zip(spatial, pad)]
    ksizes = list(wshape[2:])
    dil = list(kw.get("dilation", (1,) * nd))
    if any(s < d * (kk - 1) + 1 for s, kk, d in zip(sizes, ksizes, dil)):
        return None
    return x, w, b, kw


def _expected(nd, x, w, b, kw, relu):
    y = getattr(R, f"conv{nd}d")(x, w, b, **kw)
    return np.maximum(y, 0) if relu else y


def _check(maybe_torch, nd, y, x, w, b, kw, relu):
    """y against the numpy reference and, where installed, torch (with the ReLU applied after)."""
    what = f"x{x.shape} w{w.shape} {kw}"
    assert_close(y, _expected(nd, x, w, b, kw, relu), dtype=np.float32, what=what)
    if maybe_torch is not None:
        t = torch_conv(maybe_torch, x, w, b, **kw)
        assert_close(y, np.maximum(t, 0) if relu else t, dtype=np.float32, what="torch " + what)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_random_shapes(direct, maybe_torch, rng, nd, k):
    checked = 0
    while checked < 12:
        case = _case(rng, nd, k)
        if case is None:
            continue
        x, w, b, kw = case
        relu = bool(rng.random() < 0.5)
        y = getattr(F, f"conv{nd}d")(x, w, b, activation="relu" if relu else None, **kw)
        _check(maybe_torch, nd, y, x, w, b, kw, relu)
        checked += 1


@pytest.mark.parametrize("kw", [
    dict(padding=1, stride=(2, 1)),             # strided rows: the general direct kernel
    dict(padding=2, dilation=2),                # dilated rows
    dict(padding=(1, 0)),                       # a 3x2 kernel (below)
])
def test_general_kernel_shapes(direct, rng, kw):
    x = rng.standard_normal((2, 2, 19, 23)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 2 if kw.get("padding") == (1, 0) else 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    assert_close(F.conv2d(x, w, b, **kw), R.conv2d(x, w, b, **kw), dtype=np.float32)


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 1, 260, 250), (40, 1, 3, 3), dict(padding=1)),               # 21 MB: streamed, one pass
    ((1, 2, 5, 200, 203), (24, 2, 3, 3, 3), dict(padding=1)),         # 19 MB: streamed, 6 passes
    ((1, 1, 300, 301), (50, 1, 5, 5), dict(padding=2)),               # 18 MB, 5x5
])
def test_streamed_outputs(direct, rng, xs, ws, kw):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    nd = len(xs) - 2
    y = getattr(F, f"conv{nd}d")(x, w, b, activation="relu", **kw)
    assert y.nbytes >= 16 << 20
    assert_close(y, _expected(nd, x, w, b, kw, True), dtype=np.float32)
    # into a caller's array that is not 32-byte aligned (4 bytes off; 16 and 48 as numpy's own): the same bits
    for offset in (4, 16, 48):
        out = _out_at(y.shape, offset)
        getattr(F, f"conv{nd}d")(x, w, b, activation="relu", out=out, **kw)
        np.testing.assert_array_equal(out, y, err_msg=f"out= {offset} bytes past 64")


def _out_at(shape, offset):
    """An uninitialised float32 array whose data starts `offset` bytes past a 64-byte boundary."""
    size = int(np.prod(shape))
    raw = np.empty(size + 32, np.float32)
    skip = ((64 - raw.ctypes.data % 64) % 64 + offset) // 4
    out = raw[skip:skip + size].reshape(shape)
    assert out.ctypes.data % 64 == offset
    return out


@pytest.mark.parametrize("k", [3, 5, 7])
def test_rows_16_bytes_off_give_the_bits_of_aligned_rows(direct, rng, k):
    # A streamed output whose rows start 16 bytes past a 32-byte boundary (numpy's large arrays), one
    # pass per output channel and "same" padding along W: the rows' blocks start 4 columns before
    # them, so that they stream aligned from the registers, each row's last 4 outputs with the next
    # row's first 4. Rows of 136 columns start alternately 16 and 48 bytes past 64, rows of 128 all
    # at one of those; 254 rows leave a short last block of rows. Groups of several output channels
    # (padded rows) stage their rows and copy them out, with the same bits.
    depthwise = (rng.standard_normal((2, 32, 254, 136)).astype(np.float32),
                 rng.standard_normal((32, 1, k, k)).astype(np.float32), 32)
    lone = (rng.standard_normal((140, 1, 126, 128)).astype(np.float32),
            rng.standard_normal((1, 1, k, k)).astype(np.float32), 1)
    first_layer = (rng.standard_normal((6, 2, 70, 136)).astype(np.float32),  # 24 channels per group
                   rng.standard_normal((48, 1, k, k)).astype(np.float32), 2)
    before = mc.get_num_threads()
    try:
        for x, w, groups in (depthwise, lone, first_layer):
            b = rng.standard_normal(w.shape[0]).astype(np.float32)
            kw = dict(padding=(int(rng.integers(0, k)), (k - 1) // 2), groups=groups)
            relu = "relu" if rng.random() < 0.5 else None
            y = F.conv2d(x, w, b, activation=relu, **kw)
            assert y.nbytes >= 8 << 20 and y.ctypes.data % 32 == 0
            assert_close(y[:1], _expected(2, x[:1], w, b, kw, relu is not None), dtype=np.float32)
            for threads in (1, 3):
                mc.set_num_threads(threads)
                for offset in (16, 48):
                    out = _out_at(y.shape, offset)
                    F.conv2d(x, w, b, activation=relu, out=out, **kw)
                    np.testing.assert_array_equal(out, y, err_msg=f"x{x.shape} {kw} {offset} bytes past 64, {threads}t")
    finally:
        mc.set_num_threads(before)


def test_depthwise_and_single_channel(direct, rng):
    x = rng.standard_normal((3, 6, 33, 64)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    assert_close(F.conv2d(x, w, None, padding=1, groups=6), R.conv2d(x, w, None, padding=1, groups=6),
                 dtype=np.float32)
    img = rng.standard_normal((1, 1, 97, 515)).astype(np.float32)
    k = rng.standard_normal((1, 1, 5, 5)).astype(np.float32)
    assert_close(F.conv2d(img, k, padding="same"), R.conv2d(img, k, padding="same"), dtype=np.float32)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_padded_rows_give_the_bits_of_masked_edges(direct, maybe_torch, rng, nd, k):
    # Several output channels per group read zero-padded copies of the input rows, 6 or more of them
    # in tiles of 6 channels x 16 columns with all their taps at once; a lone output channel masks
    # its edge loads and sums one (input channel, kd) pass at a time. Per output the taps come in the
    # same order, so a conv with many channels equals, bit for bit, each of its channels alone.
    for _ in range(6):
        groups = int(rng.integers(1, 3))
        cg, ocg = int(rng.integers(1, 3)), int(rng.choice([2, 3, 5, 6, 7, 11, 12, 13]))
        spatial = ([int(rng.integers(1, 6))] if nd == 3 else []) + [int(rng.integers(1, 12)),
                                                                      int(rng.choice([1, 3, 8, 9, 17, 30]))]
        pad = [int(rng.integers(0, k + 3)) for _ in range(nd)]
        if any(s + 2 * p < k for s, p in zip(spatial[-2:], pad[-2:])):
            continue
        kd = int(rng.choice([1, 3])) if nd == 3 else None
        # depth strides and dilations keep the rows stride-1 (planes outside x drop their taps)
        dstride, ddil = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if nd == 3 else (1, 1)
        if nd == 3 and spatial[0] + 2 * pad[0] < ddil * (kd - 1) + 1:
            continue
        kw = dict(padding=tuple(pad), groups=groups)
        if nd == 3:
            kw.update(stride=(dstride, 1, 1), dilation=(ddil, 1, 1))
        x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups, *spatial)).astype(np.float32)
        w = rng.standard_normal((ocg * groups, cg) + ((kd,) if nd == 3 else ()) + (k, k)).astype(np.float32)
        b = rng.standard_normal(ocg * groups).astype(np.float32)
        conv = getattr(F, f"conv{nd}d")
        relu = "relu" if rng.random() < 0.5 else None
        y = conv(x, w, b, activation=relu, **kw)
        alone_kw = {k_: v for k_, v in kw.items() if k_ != "groups"}
        for g in range(groups):
            xg = np.ascontiguousarray(x[:, g * cg:(g + 1) * cg])
            for o in range(g * ocg, (g + 1) * ocg):
                alone = conv(xg, w[o:o + 1], b[o:o + 1], activation=relu, **alone_kw)
                np.testing.assert_array_equal(y[:, o:o + 1], alone, err_msg=f"x{x.shape} w{w.shape} {kw}")
        assert_close(y, _expected(nd, x, w, b, kw, relu is not None), dtype=np.float32)
        if maybe_torch is not None:
            t = torch_conv(maybe_torch, x, w, b, **kw)
            assert_close(y, np.maximum(t, 0) if relu else t, dtype=np.float32, what=f"torch x{x.shape} {kw}")


@pytest.mark.parametrize("xs,ws", [((2, 1, 300, 301), (13, 1, 3, 3)),         # 9 taps, an 8+ MiB output: tiles 5+4+4
                                   ((1, 1, 20, 70, 37), (8, 1, 3, 3, 3))])   # 27 taps: tiles 4+4, a ragged row
def test_channel_tiles_give_the_bits_of_one_channel(direct, maybe_torch, rng, xs, ws):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    conv = F.conv3d if len(xs) == 5 else F.conv2d
    y = conv(x, w, b, padding=1, activation="relu")
    for o in range(ws[0]):
        np.testing.assert_array_equal(y[:, o:o + 1], conv(x, w[o:o + 1], b[o:o + 1], padding=1, activation="relu"))
    assert_close(y, _expected(len(xs) - 2, x, w, b, dict(padding=1), True), dtype=np.float32)
    if maybe_torch is not None:
        assert_close(y, np.maximum(torch_conv(maybe_torch, x, w, b, padding=1), 0), dtype=np.float32, what="torch")


def test_streamed_and_tiled_large_outputs_agree(direct, maybe_torch, rng):
    # 9 taps and an 8+ MiB output: one channel at a time with streaming stores where the output's
    # rows are 32-byte aligned (a fresh result), channel tiles where they are not (this out=).
    x = rng.standard_normal((2, 1, 300, 304)).astype(np.float32)
    w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    y = F.conv2d(x, w, b, padding=1)
    assert y.nbytes >= 8 << 20 and y.ctypes.data % 32 == 0
    buf = np.empty(y.size + 1, np.float32)
    out = buf[1:].reshape(y.shape)
    F.conv2d(x, w, b, padding=1, out=out)
    np.testing.assert_array_equal(out, y)
    assert_close(y, R.conv2d(x, w, b, padding=1), dtype=np.float32)
    if maybe_torch is not None:
        assert_close(y, torch_conv(maybe_torch, x, w, b, padding=1), dtype=np.float32, what="torch")


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_shifted_row_ends_give_the_bits_of_padded_rows(direct, maybe_torch, rng, nd, k):
    # One output channel per group with "same" padding along W, and rows of a multiple of 8 columns
    # (16 or more), reads each row's first and last 8 columns shifted by whole lanes in registers;
    # two channels per group read zero-padded copies of the rows. Same bits either way.
    for width in (16, 24, 64, 72, 136):
        groups, cg = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        spatial = ([int(rng.integers(1, 5))] if nd == 3 else []) + [int(rng.integers(1, 14)), width]
        pad = ([int(rng.integers(0, 2))] if nd == 3 else []) + [int(rng.integers(0, k)), (k - 1) // 2]
        if spatial[-2] + 2 * pad[-2] < k:
            continue
        kd = int(rng.choice([1, 3])) if nd == 3 and spatial[0] + 2 * pad[0] >= 3 else 1
        kw = dict(padding=tuple(pad), groups=groups)
        x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups, *spatial)).astype(np.float32)
        w = rng.standard_normal((groups, cg) + ((kd,) if nd == 3 else ()) + (k, k)).astype(np.float32)
        b = rng.standard_normal(groups).astype(np.float32)
        conv = getattr(F, f"conv{nd}d")
        relu = "relu" if rng.random() < 0.5 else None
        lone = conv(x, w, b, activation=relu, **kw)
        pairs = conv(x, np.repeat(w, 2, axis=0), np.repeat(b, 2), activation=relu, **kw)
        np.testing.assert_array_equal(lone, pairs[:, 0::2], err_msg=f"x{x.shape} w{w.shape} {kw}")
        np.testing.assert_array_equal(lone, pairs[:, 1::2], err_msg=f"x{x.shape} w{w.shape} {kw}")
        assert_close(lone, _expected(nd, x, w, b, kw, relu is not None), dtype=np.float32)
        if maybe_torch is not None:
            t = torch_conv(maybe_torch, x, w, b, **kw)
            assert_close(lone, np.maximum(t, 0) if relu else t, dtype=np.float32, what=f"torch x{x.shape} {kw}")


@pytest.mark.parametrize("xs,ws", [((2, 1, 45, 77), (7, 1, 3, 3)), ((1, 1, 9, 30, 41), (5, 1, 3, 3, 3)),
                                   ((1, 1, 260, 250), (70, 1, 3, 3)),
                                   ((2, 1, 70, 128), (1, 1, 3, 3))])  # a lone channel: shifted row ends
def test_same_bits_for_any_thread_count(direct, rng, xs, ws):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    conv = F.conv3d if len(xs) == 5 else F.conv2d
    same_bits_at_thread_counts(lambda: conv(x, w, b, padding=1))


def test_repeated_calls_take_the_cached_validation(rng):
    # the second call on the same shapes skips the argument checks (functional/conv.py's _PLANS):
    # same result, and a bad out= is still refused
    x = rng.standard_normal((2, 3, 12, 14)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    first = F.conv2d(x, w, padding=1)
    second = F.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="out has shape"):
        F.conv2d(x, w, padding=1, out=np.empty((2, 4, 12, 13), np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        F.conv2d(x, w, padding=1, out=np.empty((2, 4, 12, 14), np.float64))
    strided = np.asfortranarray(x)  # a non-contiguous input on the cached path is copied, not misread
    np.testing.assert_array_equal(F.conv2d(strided, w, padding=1), first)
    # arguments equal to a cached call's but of another type are still checked
    with pytest.raises(TypeError, match="padding"):
        F.conv2d(x, w, padding=1.0)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, w, padding=1, groups=True)


def test_repeated_pool_calls_take_the_cached_validation(rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    first, idx = F.max_pool2d(x, 2, return_indices=True)
    again, idx2 = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_array_equal(F.max_pool2d(x, 2), first)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, 2.0)
    with pytest.raises(TypeError, match="return_indices"):
        F.max_pool2d(x, 2, return_indices=1)
    avg = F.avg_pool2d(x, 2)
    np.testing.assert_array_equal(F.avg_pool2d(x, 2), avg)
    with pytest.raises(TypeError, match="count_include_pad"):
        F.avg_pool2d(x, 2, count_include_pad=1)
    with pytest.raises(ValueError, match="out has shape"):
        F.avg_pool2d(x, 2, out=np.empty((2, 3, 4, 5), np.float32))


def test_repeated_pad_calls_take_the_cached_validation(rng):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    first = F.pad(x, (1, 2, 0, 1), mode="reflect")
    np.testing.assert_array_equal(F.pad(x, (1, 2, 0, 1), mode="reflect"), first)
    with pytest.raises(TypeError, match="pad must be a tuple of ints"):
        F.pad(x, (1, 2, 0, 1.0), mode="reflect")
    with pytest.raises(ValueError, match="value is only used"):
        F.pad(x, (1, 2, 0, 1), mode="reflect", value=2.0)


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("k", [5, 7])
def test_channel_tiles_with_many_input_channels(direct, maybe_torch, rng, nd, k):
    """The channel tiles for 5x5 and 7x7 convs with up to 64 outputs and many inputs (the plan's rule
    since session 9): 7-40 input channels per group, 6-64 outputs in tiles of up to 6 (ragged last
    tiles), ragged rows, groups, padded rows up to 128 KiB per block; the same bits at 1 and 3 threads."""
    for i in range(4):
        groups = 1 + i % 2
        cg, ocg = int(rng.integers(7, 41)), int(rng.choice([6, 11, 32, 64]))
        if nd == 3:
            spatial = [int(rng.integers(k, k + 2)), int(rng.integers(k, 12)), int(rng.integers(9, 40))]
        else:
            spatial = [int(rng.integers(k, 24)), int(rng.integers(9, 70))]
        x = rng.standard_normal((2, cg * groups, *spatial)).astype(np.float32)
        w = rng.standard_normal((ocg * groups, cg) + (k,) * nd).astype(np.float32) / k
        b = rng.standard_normal(ocg * groups).astype(np.float32)
        kw = dict(padding=k // 2, groups=groups)
        relu = i % 2 == 1
        f = getattr(F, f"conv{nd}d")
        y = same_bits_at_thread_counts(lambda: f(x, w, b, activation="relu" if relu else None, **kw), (1, 3))
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(y, _expected(nd, x, w, b, kw, relu), dtype=np.float32, scale=4, what=what)
        if maybe_torch is not None:
            t = torch_conv(maybe_torch, x, w, b, **kw)
            assert_close(y, np.maximum(t, 0) if relu else t, dtype=np.float32, scale=4, what="torch " + what)


def test_1d_channel_tiles_random_shapes(direct, maybe_torch, rng):
    # conv_tiles1d_avx2.cpp: 8+ output channels and 32+ input taps per group, strides 1-4 and
    # dilations along W read from phase rows; tails of fewer than 16 outputs, 6 channels or a block
    checked = 0
    while checked < 30:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, ocg = int(rng.integers(4, 40)), int(rng.choice([8, 9, 13, 16, 64]))
        k = int(rng.integers(1, 10))
        if cg * k < 32:
            continue
        stride, dilation = int(rng.integers(1, 5)), int(rng.choice([1, 1, 2, 3]))
        pad = int(rng.integers(0, dilation * (k - 1) + 3))
        width = int(rng.integers(1, 700))
        if width + 2 * pad < dilation * (k - 1) + 1:
            continue
        x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups, width)).astype(np.float32)
        w = rng.standard_normal((ocg * groups, cg, k)).astype(np.float32)
        b = rng.standard_normal(ocg * groups).astype(np.float32) if rng.random() < 0.8 else None
        kw = dict(stride=stride, padding=pad, dilation=dilation, groups=groups)
        relu = bool(rng.random() < 0.5)
        y = F.conv1d(x, w, b, activation="relu" if relu else None, **kw)
        if mc.backend_info()["isa"] in ("avx2", "avx512"):  # AVX-512: its 8 x 32 tile
            plans = [p["algorithm"] for p in mc._core.conv_plans() if p["W"] == width and p["C"] == cg * groups]
            assert plans[-1] == "direct"
        _check(maybe_torch, 1, y, x, w, b, kw, relu)
        checked += 1
    x = rng.standard_normal((3, 48, 1000)).astype(np.float32)
    w = rng.standard_normal((40, 24, 7)).astype(np.float32)
    same_bits_at_thread_counts(lambda: F.conv1d(x, w, padding=3, stride=2, groups=2))
    if {"avx2", "avx512"} <= set(mc.backend_info()["supported_isas"]):  # the 8 x 32 tile sums as the 6 x 16 one
        before = mc.backend_info()["isa"]
        try:
            runs = []
            for isa in ("avx2", "avx512"):
                mc._core.select_isa(isa)
                runs.append([F.conv1d(x[..., :width], w, bias, stride=st, padding=3, groups=2, activation=act)
                             for width, st, act, bias in [(1000, 2, None, None), (333, 1, "relu", x[0, :40, 0]),
                                                          (77, 3, None, x[1, :40, 1])]])
        finally:
            mc._core.select_isa(before)
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
    # a 2D/3D conv of one-row inputs is a 1D conv only without padding along H (and D): padded rows
    # are bias only, and other output rows exist
    x2, w2, b2 = (rng.standard_normal(s).astype(np.float32) for s in [(2, 32, 1, 64), (16, 32, 1, 3), (16,)])
    for kw in [dict(padding=1), dict(padding=(1, 1), stride=(3, 1)), dict(padding=(0, 1))]:
        assert_close(F.conv2d(x2, w2, b2, **kw), _expected(2, x2, w2, b2, kw, False), dtype=np.float32, what=str(kw))
    x3 = x2.reshape(2, 32, 1, 1, 64)
    w3 = w2.reshape(16, 32, 1, 1, 3)
    kw = dict(padding=(1, 0, 1))
    assert_close(F.conv3d(x3, w3, b2, **kw), _expected(3, x3, w3, b2, kw, False), dtype=np.float32, what=str(kw))


def test_pointwise_few_outputs_random_shapes(maybe_torch, rng):
    # conv_pointwise_avx2.cpp, the plan's pick (no forcing): 1x1 convs with 1-8 outputs per group,
    # 1D to 3D, groups, input channels not a multiple of the 4 per sweep, pixel runs with tails
    for trial in range(30):
        nd = int(rng.integers(1, 4))
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, ocg = int(rng.integers(1, 70)), int(rng.integers(1, 9))
        spatial = tuple(int(rng.integers(1, {1: 3000, 2: 90, 3: 20}[nd])) for _ in range(nd))
        x = rng.standard_normal((int(rng.integers(1, 3)), cg * groups) + spatial).astype(np.float32)
        w = rng.standard_normal((ocg * groups, cg) + (1,) * nd).astype(np.float32)
        b = rng.standard_normal(ocg * groups).astype(np.float32) if rng.random() < 0.8 else None
        relu = bool(rng.random() < 0.5)
        y = getattr(F, f"conv{nd}d")(x, w, b, groups=groups, activation="relu" if relu else None)
        if mc.backend_info()["isa"] == "avx2":
            assert mc._core.conv_plans()[-1]["algorithm"] == "direct"
        _check(maybe_torch, nd, y, x, w, b, dict(groups=groups), relu)
    x = rng.standard_normal((3, 40, 77, 61)).astype(np.float32)
    w = rng.standard_normal((5, 40, 1, 1)).astype(np.float32)
    same_bits_at_thread_counts(lambda: F.conv2d(x, w))


def test_phase_rows_random_shapes(maybe_torch, rng):
    # conv_phase_rows_avx2.cpp, the plan's pick: one input channel per group (depthwise,
    # single-channel) and a stride of 2-4 along W, rows split into their stride phases; 2D and 3D,
    # any kernel, padding, dilation and stride elsewhere
    checked = 0
    while checked < 40:
        nd = int(rng.integers(2, 4))
        groups, ocg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        spatial = tuple(int(v) for v in rng.integers(1, 30 if nd == 2 else 10, nd - 1)) + (int(rng.integers(16, 90)),)
        k = tuple(int(v) for v in rng.integers(1, 6, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd - 1)) + (int(rng.integers(2, 5)),)
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        pad = tuple(int(rng.integers(0, kk + 1)) for kk in k)
        if any(sz + 2 * p < d * (kk - 1) + 1 for sz, p, d, kk in zip(spatial, pad, dilation, k)):
            continue
        x = rng.standard_normal((int(rng.integers(1, 3)), groups) + spatial).astype(np.float32)
        w = rng.standard_normal((groups * ocg, 1) + k).astype(np.float32)
        b = rng.standard_normal(groups * ocg).astype(np.float32) if rng.random() < 0.8 else None
        kw = dict(stride=stride, padding=pad, dilation=dilation, groups=groups)
        relu = bool(rng.random() < 0.5)
        y = getattr(F, f"conv{nd}d")(x, w, b, activation="relu" if relu else None, **kw)
        if y.shape[-1] < 8:
            continue
        if mc.backend_info()["isa"] == "avx2":
            assert mc._core.conv_plans()[-1]["algorithm"] == "direct"
        _check(maybe_torch, nd, y, x, w, b, kw, relu)
        checked += 1
    x = rng.standard_normal((2, 24, 45, 77)).astype(np.float32)
    w = rng.standard_normal((24, 1, 3, 3)).astype(np.float32)
    same_bits_at_thread_counts(lambda: F.conv2d(x, w, padding=1, stride=2, groups=24))


@pytest.mark.skipif("avx512" not in mc.backend_info()["supported_isas"], reason="needs an AVX-512 CPU")
def test_avx512_depthwise_3x3_gives_avx2s_bits(rng):
    """conv_depthwise_avx512.cpp: 3x3 stride-1 "same" convs of one channel per group, rows a multiple of 16,
    sum as conv_rows_avx2.cpp's 8-lane kernel does: the same bits, with and without bias and ReLU, NaN
    and infinities in the input and the taps (an infinite tap times the zero padding is NaN there too),
    rows past a block of 8, one-channel images, 3D inputs with 1 x 3 x 3 kernels, streamed outputs
    (8 MiB and more, from the output cache) and an out= 16 bytes off (which the AVX2 kernel keeps)."""
    cases = [((2, 6, 13, 48), 6, True, "relu"), ((1, 1, 5, 16), 1, False, None), ((3, 4, 16, 32), 4, True, None),
             ((2, 16, 256, 256), 16, True, "relu"), ((1, 3, 4, 9, 64), 3, True, None)]
    before = mc.backend_info()["isa"]
    try:
        for shape, groups, bias, act in cases:
            x = rng.standard_normal(shape).astype(np.float32)
            x.flat[:: max(1, x.size // 7)] = np.float32(np.nan)
            x.flat[5] = np.inf
            nd = len(shape) - 2
            w = rng.standard_normal((groups, 1) + (1,) * (nd - 2) + (3, 3)).astype(np.float32)
            w.flat[-1] = np.inf if shape[-2] == 13 else w.flat[-1]
            b = rng.standard_normal(groups).astype(np.float32) if bias else None
            pad = 1 if nd == 2 else (0, 1, 1)
            conv = getattr(F, f"conv{nd}d")
            runs = []
            for isa in ("avx2", "avx512"):
                mc._core.select_isa(isa)
                y = conv(x, w, b, padding=pad, groups=groups, activation=act)
                out = np.empty(y.shape, np.float32)
                conv(x, w, b, padding=pad, groups=groups, activation=act, out=out)
                runs.append((y.copy(), out))
            for a, c in zip(*runs):
                np.testing.assert_array_equal(a.view(np.int32), c.view(np.int32), err_msg=f"{shape}")
            assert_close(runs[1][0], _expected(nd, x, w, b, dict(padding=pad, groups=groups), act == "relu"),
                         dtype=np.float32, what=f"{shape} against the reference")
    finally:
        mc._core.select_isa(before)


@pytest.mark.skipif("avx512" not in mc.backend_info()["supported_isas"], reason="needs an AVX-512 CPU")
def test_avx512_depthwise_3x3_random_shapes(maybe_torch, rng):
    """The AVX-512 depthwise kernel over random shapes (images, channels, rows past a block of 8, rows of
    16 to 96 columns, one-channel images, bias and ReLU) against the numpy reference and torch."""
    before = mc.backend_info()["isa"]
    try:
        mc._core.select_isa("avx512")
        for _ in range(12):
            c = int(rng.choice([1, 2, 5, 16]))
            x = rng.standard_normal((int(rng.integers(1, 3)), c, int(rng.integers(1, 20)),
                                     16 * int(rng.integers(1, 7)))).astype(np.float32)
            w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
            b = rng.standard_normal(c).astype(np.float32) if rng.random() < 0.7 else None
            relu = bool(rng.random() < 0.5)
            kw = dict(padding=1, groups=c)
            _check(maybe_torch, 2, F.conv2d(x, w, b, activation="relu" if relu else None, **kw), x, w, b, kw, relu)
    finally:
        mc._core.select_isa(before)
