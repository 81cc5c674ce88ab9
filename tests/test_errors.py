"""Every wrong input gets a ValueError or TypeError that names the offending argument."""

import numpy as np
import pytest

import medconv.functional as F


def _x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def names(*words):
    """A case-insensitive regex that needs every word somewhere in the message."""
    return "(?is)" + "".join(f"(?=.*{w})" for w in words)


x1, x2, x3 = _x(1, 3, 10), _x(1, 3, 8, 8), _x(1, 3, 5, 5, 5)
w1, w2, w3 = _x(2, 3, 3), _x(2, 3, 3, 3), _x(2, 3, 3, 3, 3)

CASES = [
    # ------------------------------------------------------------------ conv
    ("conv channels", lambda: F.conv2d(_x(1, 4, 8, 8), w2), ValueError, names("weight", "channel")),
    ("conv groups don't divide input", lambda: F.conv2d(_x(1, 4, 8, 8), _x(3, 2, 3, 3), groups=3), ValueError, "(?i)groups"),
    ("conv groups don't divide out", lambda: F.conv2d(_x(1, 4, 8, 8), _x(5, 2, 3, 3), groups=2), ValueError, "(?i)groups"),
    ("conv groups 0", lambda: F.conv2d(x2, w2, groups=0), ValueError, "(?i)groups"),
    ("conv groups -1", lambda: F.conv2d(x2, w2, groups=-1), ValueError, "(?i)groups"),
    ("conv stride 0", lambda: F.conv2d(x2, w2, stride=0), ValueError, "(?i)stride"),
    ("conv stride -1", lambda: F.conv1d(x1, w1, stride=-1), ValueError, "(?i)stride"),
    ("conv stride tuple 0", lambda: F.conv3d(x3, w3, stride=(1, 0, 1)), ValueError, "(?i)stride"),
    ("conv stride length", lambda: F.conv2d(x2, w2, stride=(1, 1, 1)), ValueError, "(?i)stride"),
    ("conv padding -1", lambda: F.conv2d(x2, w2, padding=-1), ValueError, "(?i)padding"),
    ("conv padding length", lambda: F.conv2d(x2, w2, padding=(1, 2, 3)), ValueError, "(?i)padding"),
    ("conv padding float", lambda: F.conv2d(x2, w2, padding=1.5), TypeError, "(?i)padding"),
    ("conv padding string", lambda: F.conv2d(x2, w2, padding="full"), ValueError, "(?i)padding"),
    ("conv dilation 0", lambda: F.conv2d(x2, w2, dilation=0), ValueError, "(?i)dilation"),
    ("conv dilation -2", lambda: F.conv3d(x3, w3, dilation=(1, -2, 1)), ValueError, "(?i)dilation"),
    ("conv zero kernel", lambda: F.conv2d(x2, _x(2, 3, 0, 3)), ValueError, "(?i)weight"),
    ("conv zero out channels", lambda: F.conv2d(x2, _x(0, 3, 3, 3)), ValueError, "(?i)weight"),
    ("conv kernel > padded input", lambda: F.conv2d(x2, _x(2, 3, 11, 3), padding=1), ValueError, "(?i)kernel"),
    ("conv dilated kernel > input", lambda: F.conv1d(x1, w1, dilation=5), ValueError, "(?i)kernel"),
    ("conv weight ndim", lambda: F.conv2d(x2, w1), ValueError, "(?i)weight"),
    ("conv input ndim 5", lambda: F.conv2d(x3, w2), ValueError, "(?i)input"),
    ("conv input ndim 2", lambda: F.conv2d(_x(3, 8), w2), ValueError, "(?i)input"),
    ("conv bias shape", lambda: F.conv2d(x2, w2, _x(3)), ValueError, "(?i)bias"),
    ("conv bias 2d", lambda: F.conv2d(x2, w2, _x(2, 1)), ValueError, "(?i)bias"),
    ("conv same stride 2", lambda: F.conv2d(x2, w2, padding="same", stride=2), ValueError, "(?i)stride"),
    ("conv padding_mode", lambda: F.conv2d(x2, w2, padding=1, padding_mode="mirror"), ValueError, "(?i)padding_mode"),
    ("conv reflect too wide", lambda: F.conv1d(_x(1, 3, 3), w1, padding=3, padding_mode="reflect"), ValueError, "(?i)padding"),
    ("conv reflect same too wide", lambda: F.conv2d(_x(1, 3, 2, 8), _x(2, 3, 5, 1), padding="same", padding_mode="reflect"),
     ValueError, "(?i)padding"),
    ("conv circular too wide", lambda: F.conv1d(_x(1, 3, 2), w1, padding=3, padding_mode="circular"), ValueError, "(?i)padding"),
    ("conv int input", lambda: F.conv2d(x2.astype(np.int32), w2), TypeError, "(?i)dtype"),
    ("conv float16 input", lambda: F.conv2d(x2.astype(np.float16), w2.astype(np.float16)), TypeError, "(?i)dtype"),
    ("conv mixed dtype weight", lambda: F.conv2d(x2, w2.astype(np.float64)), TypeError, "(?i)weight"),
    ("conv mixed dtype bias", lambda: F.conv2d(x2, w2, _x(2, dtype=np.float64)), TypeError, "(?i)bias"),
    ("conv list input", lambda: F.conv1d([[[1.0, 2.0, 3.0]]], w1[:, :1]), TypeError, "(?i)input"),
    ("conv string input", lambda: F.conv2d("image", w2), TypeError, "(?i)input"),
    ("conv None input", lambda: F.conv2d(None, w2), TypeError, "(?i)input"),
    ("conv None weight", lambda: F.conv2d(x2, None), TypeError, "(?i)weight"),
    ("conv list weight", lambda: F.conv1d(x1, [[[1.0]]] * 2), TypeError, "(?i)weight"),
    ("conv out shape", lambda: F.conv2d(x2, w2, out=_x(1, 2, 5, 5)), ValueError, "(?i)out"),
    ("conv out dtype", lambda: F.conv2d(x2, w2, out=_x(1, 2, 6, 6, dtype=np.float64)), TypeError, "(?i)out"),
    # ------------------------------------------------------------------ pad
    ("pad odd length", lambda: F.pad(x2, (1, 2, 3)), ValueError, "(?i)pad"),
    ("pad too long", lambda: F.pad(x2, (1,) * 8), ValueError, "(?i)pad"),
    ("pad more dims than input", lambda: F.pad(_x(4, 5), (1, 1, 1, 1, 1, 1)), ValueError, "(?i)pad"),
    ("pad not a tuple", lambda: F.pad(x2, 2), TypeError, "(?i)pad"),
    ("pad floats", lambda: F.pad(x2, (1.0, 2.0)), TypeError, "(?i)pad"),
    ("pad reflect too wide", lambda: F.pad(x2, (8, 0), mode="reflect"), ValueError, "(?i)pad"),
    ("pad reflect too wide dim 2", lambda: F.pad(_x(1, 2, 3, 9), (1, 1, 0, 3), mode="reflect"), ValueError, "(?i)pad"),
    ("pad circular too wide", lambda: F.pad(x2, (0, 9), mode="circular"), ValueError, "(?i)pad"),
    ("pad negative reflect", lambda: F.pad(x2, (-1, 1), mode="reflect"), ValueError, "(?i)pad"),
    ("pad crop below zero", lambda: F.pad(x2, (-5, -4)), ValueError, "(?i)pad"),
    ("pad mode", lambda: F.pad(x2, (1, 1), mode="mirror"), ValueError, "(?i)mode"),
    ("pad value with reflect", lambda: F.pad(x2, (1, 1), mode="reflect", value=2.0), ValueError, "(?i)value"),
    ("pad int input", lambda: F.pad(np.zeros((2, 3), np.int64), (1, 1)), TypeError, "(?i)dtype"),
    ("pad float16 input", lambda: F.pad(x2.astype(np.float16), (1, 1)), TypeError, "(?i)dtype"),
    ("pad list input", lambda: F.pad([1.0, 2.0], (1, 1)), TypeError, "(?i)input"),
    ("pad None input", lambda: F.pad(None, (1, 1)), TypeError, "(?i)input"),
    # ------------------------------------------------------------------ pooling
    ("max kernel 0", lambda: F.max_pool2d(x2, 0), ValueError, "(?i)kernel_size"),
    ("max kernel -1", lambda: F.max_pool1d(x1, -1), ValueError, "(?i)kernel_size"),
    ("max kernel length", lambda: F.max_pool2d(x2, (2, 2, 2)), ValueError, "(?i)kernel_size"),
    ("max stride 0", lambda: F.max_pool2d(x2, 2, stride=0), ValueError, "(?i)stride"),
    ("max padding -1", lambda: F.max_pool2d(x2, 3, padding=-1), ValueError, "(?i)padding"),
    ("max padding > half kernel", lambda: F.max_pool2d(x2, 3, padding=2), ValueError, "(?i)padding"),
    ("max padding > half kernel 3d", lambda: F.max_pool3d(x3, (3, 2, 3), padding=(1, 2, 1)), ValueError, "(?i)padding"),
    ("max dilation 0", lambda: F.max_pool2d(x2, 2, dilation=0), ValueError, "(?i)dilation"),
    ("max kernel > input", lambda: F.max_pool2d(x2, 9), ValueError, "(?i)kernel_size"),
    ("max dilated kernel > input", lambda: F.max_pool1d(x1, 3, dilation=5), ValueError, "(?i)kernel_size"),
    ("max ndim low", lambda: F.max_pool2d(_x(8, 8), 2), ValueError, "(?i)input"),
    ("max ndim high", lambda: F.max_pool2d(x3, 2), ValueError, "(?i)input"),
    ("max int input", lambda: F.max_pool2d(x2.astype(np.int16), 2), TypeError, "(?i)dtype"),
    ("max float16 input", lambda: F.max_pool1d(x1.astype(np.float16), 2), TypeError, "(?i)dtype"),
    ("max string input", lambda: F.max_pool2d("abc", 2), TypeError, "(?i)input"),
    ("avg kernel 0", lambda: F.avg_pool3d(x3, (2, 0, 2)), ValueError, "(?i)kernel_size"),
    ("avg stride -1", lambda: F.avg_pool1d(x1, 2, stride=-1), ValueError, "(?i)stride"),
    ("avg padding > half kernel", lambda: F.avg_pool1d(x1, 2, padding=2), ValueError, "(?i)padding"),
    ("avg kernel > padded input", lambda: F.avg_pool2d(x2, 11, padding=1), ValueError, "(?i)kernel_size"),
    ("avg divisor 0", lambda: F.avg_pool2d(x2, 2, divisor_override=0), ValueError, "(?i)divisor_override"),
    ("avg ndim", lambda: F.avg_pool3d(x2[0, 0], 2), ValueError, "(?i)input"),
    ("avg None input", lambda: F.avg_pool2d(None, 2), TypeError, "(?i)input"),
    ("adaptive output 0", lambda: F.adaptive_avg_pool2d(x2, 0), ValueError, "(?i)output_size"),
    ("adaptive output length", lambda: F.adaptive_avg_pool3d(x3, (2, 2)), ValueError, "(?i)output_size"),
    ("adaptive ndim", lambda: F.adaptive_avg_pool2d(_x(8), 2), ValueError, "(?i)input"),
    ("adaptive int input", lambda: F.adaptive_avg_pool2d(x2.astype(np.int32), 2), TypeError, "(?i)dtype"),
    ("pool out shape", lambda: F.max_pool2d(x2, 2, out=_x(1, 3, 3, 3)), ValueError, "(?i)out"),
    # ------------------------------------------------------------------ activations, softmax, maxout, linear
    ("relu int", lambda: F.relu(np.arange(4)), TypeError, "(?i)dtype"),
    ("sigmoid float16", lambda: F.sigmoid(x1.astype(np.float16)), TypeError, "(?i)dtype"),
    ("gelu bool", lambda: F.gelu(np.ones(3, bool)), TypeError, "(?i)dtype"),
    ("relu list", lambda: F.relu([1.0, -1.0]), TypeError, "(?i)input"),
    ("tanh string", lambda: F.tanh("x"), TypeError, "(?i)input"),
    ("elu None", lambda: F.elu(None), TypeError, "(?i)input"),
    ("gelu approximate", lambda: F.gelu(x1, approximate="fast"), ValueError, "(?i)approximate"),
    ("leaky_relu slope string", lambda: F.leaky_relu(x1, "0.1"), TypeError, "(?i)negative_slope"),
    ("unary out shape", lambda: F.relu(x1, out=_x(1, 3, 9)), ValueError, "(?i)out"),
    ("softmax dim high", lambda: F.softmax(x2, 4), ValueError, "(?i)dim"),
    ("softmax dim low", lambda: F.softmax(x2, -5), ValueError, "(?i)dim"),
    ("log_softmax dim high", lambda: F.log_softmax(x1, 3), ValueError, "(?i)dim"),
    ("softmax dim float", lambda: F.softmax(x1, 1.0), TypeError, "(?i)dim"),
    ("softmax int", lambda: F.softmax(np.arange(4), 0), TypeError, "(?i)dtype"),
    ("softmax None", lambda: F.softmax(None, 0), TypeError, "(?i)input"),
    ("maxout not divisible", lambda: F.maxout(_x(2, 5, 4), 2), ValueError, "(?i)pieces"),
    ("maxout not divisible dim", lambda: F.maxout(_x(2, 6, 4), 3, dim=2), ValueError, "(?i)pieces"),
    ("maxout pieces 0", lambda: F.maxout(_x(2, 6, 4), 0), ValueError, "(?i)pieces"),
    ("maxout dim", lambda: F.maxout(_x(2, 6, 4), 2, dim=3), ValueError, "(?i)dim"),
    ("maxout float16", lambda: F.maxout(_x(2, 6, dtype=np.float16), 2), TypeError, "(?i)dtype"),
    ("linear weight 1d", lambda: F.linear(_x(3, 4), _x(4)), ValueError, "(?i)weight"),
    ("linear in_features", lambda: F.linear(_x(3, 4), _x(5, 3)), ValueError, "(?i)in_features|input"),
    ("linear bias", lambda: F.linear(_x(3, 4), _x(5, 4), _x(4)), ValueError, "(?i)bias"),
    ("linear int", lambda: F.linear(np.ones((3, 4), np.int32), _x(5, 4)), TypeError, "(?i)dtype"),
    ("linear mixed dtype", lambda: F.linear(_x(3, 4), _x(5, 4, dtype=np.float64)), TypeError, "(?i)weight"),
    ("linear list", lambda: F.linear([[1.0] * 4], _x(5, 4)), TypeError, "(?i)input"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("fn", ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "relu", "softmax", "pad"])
@pytest.mark.parametrize("bad", [[[1.0]], "abc", None, 3.0], ids=["list", "str", "None", "float"])
def test_non_array_input(fn, bad):
    args = {"conv2d": (w2,), "max_pool2d": (2,), "avg_pool2d": (2,), "adaptive_avg_pool2d": (2,),
            "relu": (), "softmax": (0,), "pad": ((1, 1),)}[fn]
    with pytest.raises(TypeError, match="(?i)input"):
        getattr(F, fn)(bad, *args)


def test_torch_int_tensor(torch):
    with pytest.raises(TypeError, match="(?i)dtype"):
        F.relu(torch.arange(4))
    with pytest.raises(TypeError, match="(?i)dtype"):
        F.conv1d(torch.zeros(1, 3, 10, dtype=torch.float16), torch.zeros(2, 3, 3, dtype=torch.float16))
