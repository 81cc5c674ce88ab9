"""Every medconv.nn layer against its torch.nn twin with the same state dict: outputs, buffers,
input gradients and parameter gradients (float64 tight, float32 for a subset)."""

import warnings

import numpy as np
import pytest

import medconv.nn as nn
from conftest import assert_close, rand

LAYERS = [
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 11)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2), (2, 4, 9, 8)),
    ("Conv2d", (2, 3, 3), dict(padding="same", padding_mode="reflect"), (1, 2, 6, 7)),
    ("Conv2d", (2, 3, 2), dict(padding=1, padding_mode="circular", bias=False), (2, 2, 5, 4)),
    ("Conv3d", (2, 4, 3), dict(padding=1, bias=False), (1, 2, 5, 4, 6)),
    ("Conv3d", (2, 2, (1, 3, 2)), dict(stride=(1, 2, 2), padding="valid"), (2, 2, 3, 7, 6)),
    ("ConvTranspose1d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 5)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, groups=2), (1, 4, 4, 5)),
    ("ConvTranspose2d", (2, 2, 2), dict(stride=2, bias=False, dilation=2), (2, 2, 3, 3)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=2), (1, 2, 3, 3, 2)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 10)),
    ("MaxPool2d", (2,), {}, (2, 3, 8, 6)),
    ("MaxPool2d", (3,), dict(stride=2, dilation=2, ceil_mode=True), (2, 3, 9, 10)),
    ("MaxPool3d", (2,), dict(stride=1, padding=1), (1, 2, 4, 5, 3)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 10)),
    ("AvgPool2d", (3, 2, 1), dict(ceil_mode=True, divisor_override=5), (2, 2, 7, 8)),
    ("AvgPool3d", (2,), {}, (1, 2, 4, 4, 5)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool3d", (2,), {}, (1, 2, 5, 3, 4)),
    ("BatchNorm1d", (5,), {}, (8, 5)),
    ("BatchNorm1d", (5,), dict(momentum=None), (4, 5, 6)),
    ("BatchNorm2d", (3,), {}, (2, 3, 4, 5)),
    ("BatchNorm2d", (3,), dict(affine=False, eps=1e-3), (2, 3, 4, 5)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (2, 3, 4, 5)),
    ("BatchNorm2d", (3,), dict(bias=False), (2, 3, 4, 5)),
    ("BatchNorm3d", (2,), dict(momentum=0.3), (2, 2, 3, 4, 2)),
    ("ReLU", (), {}, (3, 4, 5)),
    ("LeakyReLU", (0.2,), {}, (3, 4, 5)),
    ("ELU", (0.7,), {}, (3, 4, 5)),
    ("GELU", (), {}, (3, 4, 5)),
    ("GELU", (), dict(approximate="tanh"), (3, 4, 5)),
    ("Sigmoid", (), {}, (3, 4, 5)),
    ("Tanh", (), {}, (3, 4, 5)),
    ("Softmax", (), dict(dim=1), (3, 4, 5)),
    ("LogSoftmax", (), dict(dim=-1), (3, 4, 5)),
    ("Flatten", (), {}, (2, 3, 4, 5)),
    ("Flatten", (1, 2), {}, (2, 3, 4, 5)),
    ("Unflatten", (1, (2, 3)), {}, (4, 6, 2)),
    ("Linear", (7, 3), {}, (4, 7)),
    ("Linear", (5, 4), dict(bias=False), (2, 3, 5)),
    ("Upsample", (), dict(scale_factor=2, mode="bilinear", align_corners=False), (1, 2, 3, 4)),
    ("Upsample", (), dict(size=(5, 7), mode="nearest"), (2, 1, 3, 4)),
    ("Upsample", (), dict(scale_factor=(1.5, 2, 2), mode="trilinear", align_corners=True), (1, 1, 2, 3, 2)),
    ("Identity", (), {}, (2, 3)),
]


def pair(torch, name, args, kw, dtype=np.float64):
    """(torch layer, medconv layer) with the same weights (random, so zero biases don't hide bugs)."""
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    tl = getattr(torch.nn, name)(*args, **kw).to(tdt)
    with torch.no_grad():
        for p in tl.parameters():
            p.uniform_(-1, 1)
    ml = getattr(nn, name)(*args, **kw)
    ml.to(dtype)
    ml.load_state_dict({k: v.numpy() for k, v in tl.state_dict().items()})
    return tl, ml


def run_both(torch, tl, ml, x, gy_rng, train=True):
    tl.train(train)
    ml.train(train)
    tx = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ty = tl(tx)
    y = ml(x)
    gy = rand(gy_rng, tuple(ty.shape), x.dtype)
    ty.backward(torch.tensor(gy))
    gx = ml.backward(gy)
    return y, ty.detach().numpy(), gx, tx.grad.numpy()


@pytest.mark.parametrize("name,args,kw,shape", LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYERS)])
def test_layer_matches_torch(torch, rng, name, args, kw, shape):
    tl, ml = pair(torch, name, args, kw)
    for train in (True, False):
        x = rand(rng, shape, np.float64) * 2
        ml.zero_grad()
        tl.zero_grad()
        y, ty, gx, tgx = run_both(torch, tl, ml, x, rng, train)
        what = f"{name}{args}{kw} train={train}"
        assert_close(y, ty, what="output " + what)
        assert_close(gx, tgx, what="grad_input " + what)
        tparams = dict(tl.named_parameters())
        for k, p in ml.named_parameters():
            assert_close(p.grad, tparams[k].grad.numpy(), what=f"grad of {k} " + what)
        for k, b in tl.state_dict().items():
            assert_close(ml.state_dict()[k], b.numpy(), what=f"buffer {k} " + what)


@pytest.mark.parametrize("name,args,kw,shape", [c for c in LAYERS if c[0].startswith(("Conv", "Batch", "Linear",
                                                                                       "MaxPool2d", "Upsample"))])
def test_layer_matches_torch_float32(torch, rng, name, args, kw, shape):
    tl, ml = pair(torch, name, args, kw, np.float32)
    x = rand(rng, shape, np.float32)
    y, ty, gx, tgx = run_both(torch, tl, ml, x, rng)
    assert y.dtype == np.float32 and gx.dtype == np.float32
    assert_close(y, ty, scale=10)
    assert_close(gx, tgx, scale=10)
    tparams = dict(tl.named_parameters())
    for k, p in ml.named_parameters():
        assert p.grad.dtype == np.float32
        assert_close(p.grad, tparams[k].grad.numpy(), scale=20, what=k)


def test_init_like_torch(torch):
    nn.manual_seed(0)
    a = nn.Conv2d(4, 8, 3)
    nn.manual_seed(0)
    b = nn.Conv2d(4, 8, 3)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert a.weight.dtype == np.float32
    bound = 1 / np.sqrt(4 * 9)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(a.weight).max() <= bound and np.abs(a.weight).max() > 0.8 * bound
    lin = nn.Linear(100, 50)
    assert np.abs(lin.weight).max() <= 0.1 and np.abs(lin.bias).max() <= 0.1
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3) and np.abs(t.weight).max() <= 1 / np.sqrt(3 * 9)
    bn = nn.BatchNorm2d(3)
    assert np.array_equal(bn.weight, np.ones(3)) and np.array_equal(bn.running_var, np.ones(3))
    assert nn.Conv1d(2, 2, 3, dtype="float64").weight.dtype == np.float64


def test_dropout_layer(rng):
    nn.manual_seed(3)
    d = nn.Dropout(0.25)
    x = rand(rng, (50, 40), np.float32)
    y = d(x)
    keep = y != 0
    assert 0.7 < keep.mean() < 0.8
    assert_close(y[keep], x[keep] / np.float32(0.75))
    g = d.backward(np.ones_like(x))
    assert_close(g, keep / np.float32(0.75))
    d.eval()
    assert d(x) is x and d.backward(x) is x
    assert repr(d) == "Dropout(p=0.25, inplace=False)"
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_maxpool_return_indices_and_conv_transpose_output_size(torch, rng):
    x = rand(rng, (1, 2, 6, 6), np.float64)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    assert np.array_equal(idx, tidx.numpy())
    tl, ml = pair(torch, "ConvTranspose2d", (2, 3, 3), dict(stride=2, padding=1))
    out = ml(y, output_size=(6, 6))
    assert_close(out, tl(ty, output_size=[6, 6]).detach().numpy())
    g = ml.backward(np.ones_like(out))
    assert g.shape == y.shape
    with pytest.raises(ValueError, match="valid sizes range from 5 to 6"):
        ml(y, output_size=(8, 8))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="only padding_mode='zeros'"):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="got an input with 2 channels"):
        nn.BatchNorm1d(3)(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="approximate must be one of"):
        nn.GELU("fast")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(2, 3, dtype="int32")
    with pytest.raises(TypeError, match="weight has dtype float32 but input has dtype float64"):
        nn.Linear(2, 3)(np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match="without a forward"):
        nn.Linear(2, 3).backward(np.zeros((1, 3), np.float32))


def test_softmax_implicit_dim_warns(rng):
    x = rand(rng, (2, 3), np.float32)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(x)
    assert_close(y.sum(axis=1), np.ones(2, np.float32))
