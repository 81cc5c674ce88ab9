"""The input gradient of a convolution and the transposed convolution as stride-1 forward convs over
the stride phases (cpp/conv_phases.cpp): against the plain scatter of tests/reference.py, on every
kernel variant this CPU runs, at 1-3 threads, and against torch where it is installed. The random
cases cover strides 1-3, dilations 1-3 (gcd(dilation, stride) > 1 too), kernels 1-4, paddings up to
the dilated kernel, output paddings, groups, phases that no tap reaches (kernel 1 with stride 2,
stride 2 with dilation 2) and 1-3 dims."""

import numpy as np
import pytest

import medconv
import medconv.functional as F
from conftest import assert_close, same_bits_at_thread_counts
from medconv.functional import backward as B
from medconv.functional import extra as E
import reference as R


def _case(rng, nd):
    groups = int(rng.choice([1, 2, 3]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = tuple(int(a) for a in rng.integers(1, 5, nd))
    stride = tuple(int(a) for a in rng.integers(1, 4, nd))
    dilation = tuple(int(a) for a in rng.integers(1, 4, nd))
    padding = tuple(int(rng.integers(0, d * (kk - 1) + 1)) for d, kk in zip(dilation, k))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    size = tuple(int(a) for a in rng.integers(1, {1: 12, 2: 7, 3: 4}[nd], nd))
    return cin, cout, k, size, dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                                    dilation=dilation)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_against_reference(isa, maybe_torch, rng, nd, dtype):
    done = 0
    while done < 12:
        cin, cout, k, size, kw = _case(rng, nd)
        x = rng.standard_normal((int(rng.integers(1, 3)), cin) + size).astype(dtype)
        w = rng.standard_normal((cin, cout // kw["groups"]) + k).astype(dtype)
        b = rng.standard_normal(cout).astype(dtype) if done % 3 else None
        try:
            y = getattr(E, f"conv_transpose{nd}d")(x, w, b, **kw)
        except ValueError:  # output too small for this random combination
            continue
        done += 1
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(y, R.conv_transpose(x, w, b, **kw), dtype=dtype, scale=4, what=what)
        if maybe_torch is not None:
            tf = getattr(maybe_torch.nn.functional, f"conv_transpose{nd}d")
            t = tf(*(None if a is None else maybe_torch.from_numpy(a) for a in (x, w, b)), **kw).numpy()
            assert_close(y, t, dtype=dtype, scale=4, what="torch " + what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_input_gradient_against_reference(isa, maybe_torch, rng, nd, dtype):
    """gx of conv(x, w) is conv_transpose(gy, w) with the output padding that makes up x's size."""
    for _ in range(12):
        cout, cin, k, _, kw = _case(rng, nd)
        kw.pop("output_padding")
        size = tuple(int(d * (kk - 1) + 1 + rng.integers(0, 9)) for d, kk in zip(kw["dilation"], k))
        x = rng.standard_normal((int(rng.integers(1, 3)), cin) + size).astype(dtype)
        w = rng.standard_normal((cout, cin // kw["groups"]) + k).astype(dtype)
        y = getattr(F, f"conv{nd}d")(x, w, **kw)
        gy = rng.standard_normal(y.shape).astype(dtype)
        gx, _, _ = getattr(B, f"conv{nd}d_backward")(gy, x, w, output_mask=(True, False, False), **kw)
        out_pad = tuple(size[i] - ((y.shape[2 + i] - 1) * kw["stride"][i] - 2 * kw["padding"][i]
                                   + kw["dilation"][i] * (k[i] - 1) + 1) for i in range(nd))
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(gx, R.conv_transpose(gy, w, None, output_padding=out_pad, **kw), dtype=dtype, scale=4, what=what)
        if maybe_torch is not None:
            t = getattr(maybe_torch.nn.grad, f"conv{nd}d_input")(x.shape, maybe_torch.from_numpy(w),
                                                                 maybe_torch.from_numpy(gy), **kw).numpy()
            assert_close(gx, t, dtype=dtype, scale=4, what="torch " + what)


@pytest.mark.parametrize("kw", [
    dict(stride=2, padding=1, output_padding=1),  # U-Net decoders: 3x3 stride 2
    dict(stride=2),                               # 2x2 stride 2: four 1x1 convs
    dict(stride=1, padding=1),
    dict(stride=(2, 3), padding=(0, 2), dilation=(2, 1)),
    dict(stride=3, padding=2, dilation=2),         # gcd(dilation, stride) = 1 with stride 3
])
def test_conv_transpose_channel_rich(maybe_torch, rng, kw):
    """Layers big enough for the GEMM, Winograd and direct kernels of the phase convs."""
    k = (2, 2) if kw == dict(stride=2) else (3, 3)
    x = rng.standard_normal((2, 32, 15, 17)).astype(np.float32)
    w = rng.standard_normal((32, 24) + k).astype(np.float32) / 10
    b = rng.standard_normal(24).astype(np.float32)
    y = E.conv_transpose2d(x, w, b, **kw)
    assert_close(y, R.conv_transpose(x, w, b, **kw), dtype=np.float32, scale=10, what=str(kw))
    if maybe_torch is not None:
        t = maybe_torch.nn.functional.conv_transpose2d(*map(maybe_torch.from_numpy, (x, w, b)), **kw).numpy()
        assert_close(y, t, dtype=np.float32, scale=10, what="torch " + str(kw))


def test_padding_beyond_the_kernel_takes_the_gather(rng):
    """A conv padded by more than its dilated kernel needs a phase conv with negative padding: the
    portable gather computes that gradient instead."""
    x = rng.standard_normal((1, 3, 6, 7))
    w = rng.standard_normal((4, 3, 2, 3))
    kw = dict(stride=2, padding=(3, 4))
    gy = rng.standard_normal(F.conv2d(x, w, **kw).shape)
    gx, _, _ = B.conv2d_backward(gy, x, w, **kw)
    y = F.conv2d(x, w, **kw)
    out_pad = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * 2 - 2 * kw["padding"][i] + w.shape[2 + i])
                    for i in range(2))
    assert_close(gx, R.conv_transpose(gy, w, None, output_padding=out_pad, **kw))


def test_same_bits_for_any_thread_count(rng):
    x = rng.standard_normal((2, 16, 13, 18)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    same_bits_at_thread_counts(lambda: E.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1))


def test_torch_conv_helper_matches_reference(maybe_torch, rng):
    """The reference's scatter agrees with torch's conv_transpose on a strided, dilated, grouped case
    (what makes it a fair judge above)."""
    if maybe_torch is None:
        pytest.skip("torch is not installed")
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    kw = dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(2, 1))
    t = maybe_torch.nn.functional.conv_transpose2d(maybe_torch.from_numpy(x), maybe_torch.from_numpy(w), **kw)
    np.testing.assert_allclose(R.conv_transpose(x, w, None, **kw), t.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 3])
def test_phases_no_tap_reaches(isa, rng, nd):
    """Kernel 1, stride 2, padding 1: the even outputs get no tap, only the bias (and with a single
    output, no phase has a tap at all)."""
    for size in (2, 7):
        x = rng.standard_normal((2, 4) + (size,) * nd)
        w = rng.standard_normal((4, 3) + (1,) * nd)
        b = rng.standard_normal(3)
        y = getattr(E, f"conv_transpose{nd}d")(x, w, b, stride=2, padding=1)
        assert_close(y, R.conv_transpose(x, w, b, stride=2, padding=1), what=f"size {size}")
        assert_close(y[(slice(None), slice(None)) + (0,) * nd], np.broadcast_to(b, (2, 3)))


def _subpixel_case(rng, nd, split=False):
    """An up-conv that cpp/conv_subpixel.h runs. Merged (one GEMM): per axis kernel == stride (the
    windows tile the output), kernel 2 x stride without padding, or stride 1 with any kernel and
    padding up to half of it, at least one axis strided; channel counts past one block of the GEMM's
    rows, rows longer than one column tile (1d). Split (split=True, a GEMM per phase): strides 2-3,
    kernels up to 2 x stride, any padding below the kernel (phases whose window starts past offset
    0, phases no tap reaches), 8-16 channels each side. Output paddings and groups either way."""
    groups = int(rng.choice([1, 1, 2]))
    if split:
        cin, cout = groups * int(rng.integers(8, 17)), groups * int(rng.integers(8, 17))
    else:
        cin = groups * int(rng.integers(1, 12))
        cout = groups * int(rng.choice([int(rng.integers(1, 6)), int(rng.integers(20, 41))]))
    k, stride, padding = [], [], []
    for axis in range(nd):
        if split:
            s = int(rng.integers(2, 4)) if axis == nd - 1 or rng.integers(0, 2) else 1
            kk = int(rng.integers(1, 2 * s + 1))
            k.append(kk), stride.append(s), padding.append(int(rng.integers(0, kk)))
            continue
        mode = int(rng.integers(0, 3)) if axis < nd - 1 else int(rng.integers(0, 2))  # the last axis strided
        s = int(rng.integers(2, 4)) if mode < 2 else 1
        kk = s * (mode + 1) if mode < 2 else int(rng.integers(1, 4))
        k.append(kk), stride.append(s), padding.append(0 if mode < 2 else int(rng.integers(0, (kk + 1) // 2)))
    low = 4 if split else 1  # split's paddings need a few inputs for a positive output size
    size = tuple(int(a) for a in rng.integers(low, {1: 500, 2: 12, 3: 6}[nd], nd))
    output_padding = tuple(int(rng.integers(0, s)) for s in stride)
    return cin, cout, tuple(k), size, dict(stride=tuple(stride), padding=tuple(padding),
                                           output_padding=output_padding, groups=groups)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_subpixel_up_convs(isa, maybe_torch, rng, nd, split):
    before = medconv.get_num_threads()
    try:
        for i in range(9):
            medconv.set_num_threads(1 + i % 3)
            cin, cout, k, size, kw = _subpixel_case(rng, nd, split)
            x = rng.standard_normal((int(rng.integers(1, 3)), cin) + size).astype(np.float32)
            w = rng.standard_normal((cin, cout // kw["groups"]) + k).astype(np.float32)
            b = rng.standard_normal(cout).astype(np.float32) if i % 3 else None
            y = getattr(E, f"conv_transpose{nd}d")(x, w, b, **kw)
            what = f"x{x.shape} w{w.shape} {kw}, {1 + i % 3} threads"
            assert_close(y, R.conv_transpose(x, w, b, **kw), dtype=np.float32, scale=4, what=what)
            if maybe_torch is not None:
                tf = getattr(maybe_torch.nn.functional, f"conv_transpose{nd}d")
                t = tf(*(None if a is None else maybe_torch.from_numpy(a) for a in (x, w, b)), **kw).numpy()
                assert_close(y, t, dtype=np.float32, scale=4, what="torch " + what)
    finally:
        medconv.set_num_threads(before)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("nd", [2, 3])
def test_input_gradient_of_a_patch_conv(isa, maybe_torch, rng, nd, split):
    """The input gradient of a conv with kernel == stride (or the other shapes of _subpixel_case):
    x's elements that no window covers (its size not a multiple of the stride) get zero."""
    for _ in range(4):
        cin, cout, k, _, kw = _subpixel_case(rng, nd, split)
        kw.pop("output_padding")
        size = tuple(int(kk + rng.integers(0, 3 * kk + 1)) for kk in k)
        x = rng.standard_normal((2, cout) + size).astype(np.float32)
        w = rng.standard_normal((cin, cout // kw["groups"]) + k).astype(np.float32)
        gy = rng.standard_normal(getattr(F, f"conv{nd}d")(x, w, **kw).shape).astype(np.float32)
        gx, _, _ = getattr(B, f"conv{nd}d_backward")(gy, x, w, output_mask=(True, False, False), **kw)
        out_pad = tuple(size[i] - ((gy.shape[2 + i] - 1) * kw["stride"][i] - 2 * kw["padding"][i] + k[i])
                        for i in range(nd))
        what = f"x{x.shape} w{w.shape} {kw}"
        assert_close(gx, R.conv_transpose(gy, w, None, output_padding=out_pad, **kw), dtype=np.float32, scale=4,
                     what=what)
        if maybe_torch is not None:
            t = getattr(maybe_torch.nn.grad, f"conv{nd}d_input")(x.shape, maybe_torch.from_numpy(w),
                                                                 maybe_torch.from_numpy(gy), **kw).numpy()
            assert_close(gx, t, dtype=np.float32, scale=4, what="torch " + what)


@pytest.mark.parametrize("shape, k", [((2, 64, 20, 30), (2, 2)), ((1, 32, 6, 10, 12), (2, 2, 2))])
def test_unet_up_convs_give_the_same_bits_for_any_thread_count(maybe_torch, rng, shape, k):
    """U-Net decoders' 2x2 and 2x2x2 stride-2 up-convs (several channel blocks and column tiles)."""
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], shape[1] // 2) + k).astype(np.float32) / 8
    b = rng.standard_normal(shape[1] // 2).astype(np.float32)
    f = E.conv_transpose2d if len(k) == 2 else E.conv_transpose3d
    y = same_bits_at_thread_counts(lambda: f(x, w, b, stride=2))
    assert_close(y, R.conv_transpose(x, w, b, stride=2), dtype=np.float32, scale=4)


@pytest.mark.parametrize("k, s, p", [(2, 2, 2), (2, 2, 3), (4, 2, 5), (3, 2, 3), (3, 2, 4)])
def test_input_gradient_padded_past_the_kernel(isa, rng, k, s, p):
    """Convs padded by the kernel or more: phases whose taps all read past the first input (a negative
    lead in cpp/conv_subpixel.h, one GEMM for k = 2s, a GEMM per phase for 3x3 with 9 and 10
    channels), against the reference."""
    for size in (9, 20):
        x = rng.standard_normal((2, 9, size, size + 3)).astype(np.float32)
        w = rng.standard_normal((10, 9, k, k)).astype(np.float32)
        gy = rng.standard_normal(F.conv2d(x, w, stride=s, padding=p).shape).astype(np.float32)
        gx, _, _ = B.conv2d_backward(gy, x, w, stride=s, padding=p, output_mask=(True, False, False))
        out_pad = tuple(x.shape[2 + i] - ((gy.shape[2 + i] - 1) * s - 2 * p + k) for i in range(2))
        assert_close(gx, R.conv_transpose(gy, w, None, stride=s, padding=p, output_padding=out_pad), dtype=np.float32,
                     scale=4, what=f"k{k} s{s} p{p} size {size}")
