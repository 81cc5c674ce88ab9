"""What goes in and what comes out: strided views, torch tensors via __dlpack__, empty batches,
dtypes kept, and out=."""

import numpy as np
import pytest

import medconv.functional as F
import reference as R
from conftest import DTYPES, assert_close, rand


def _params(dtype):
    g = np.random.default_rng(1234)
    shapes = {"w1": (4, 3, 3), "w2": (4, 3, 3, 2), "w3": (6, 1, 2, 3, 2), "b4": (4,), "b6": (6,),
              "wl": (5, 7), "b5": (5,)}
    return {k: rand(g, s, dtype) for k, s in shapes.items()}


# (name, input shape, call(module, x, params)); each op of the contract at least once
OPS = [
    ("conv1d", (2, 3, 11), lambda M, x, p: M.conv1d(x, p["w1"], p["b4"], stride=2, padding=1)),
    ("conv2d", (2, 3, 8, 9), lambda M, x, p: M.conv2d(x, p["w2"], p["b4"], padding="same", padding_mode="reflect")),
    ("conv3d", (2, 3, 5, 6, 4), lambda M, x, p: M.conv3d(x, p["w3"], p["b6"], padding=(1, 0, 1), groups=3)),
    ("pad", (2, 3, 6, 7), lambda M, x, p: M.pad(x, (1, 2, 2, 1), mode="replicate")),
    ("pad_circular", (2, 3, 6, 7), lambda M, x, p: M.pad(x, (3, 2), mode="circular")),
    ("max_pool1d", (2, 3, 10), lambda M, x, p: M.max_pool1d(x, 3, 2, 1)),
    ("max_pool2d", (2, 3, 8, 9), lambda M, x, p: M.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("max_pool3d", (2, 3, 5, 6, 4), lambda M, x, p: M.max_pool3d(x, 2, 1, dilation=(1, 2, 1))),
    ("avg_pool1d", (2, 3, 10), lambda M, x, p: M.avg_pool1d(x, 4, 3, 2, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 8, 9), lambda M, x, p: M.avg_pool2d(x, 3, 2, 1)),
    ("avg_pool3d", (2, 3, 5, 6, 4), lambda M, x, p: M.avg_pool3d(x, 2, ceil_mode=True)),
    ("adaptive_avg_pool2d", (2, 3, 8, 9), lambda M, x, p: M.adaptive_avg_pool2d(x, (3, None))),
    ("adaptive_avg_pool3d", (2, 3, 5, 6, 4), lambda M, x, p: M.adaptive_avg_pool3d(x, 2)),
    ("relu", (2, 3, 8, 9), lambda M, x, p: M.relu(x)),
    ("leaky_relu", (2, 3, 7), lambda M, x, p: M.leaky_relu(x, 0.1)),
    ("elu", (2, 3, 7), lambda M, x, p: M.elu(x)),
    ("sigmoid", (2, 3, 7), lambda M, x, p: M.sigmoid(x)),
    ("tanh", (2, 3, 7), lambda M, x, p: M.tanh(x)),
    ("gelu", (2, 3, 7), lambda M, x, p: M.gelu(x, approximate="tanh")),
    ("softmax", (2, 3, 8, 9), lambda M, x, p: M.softmax(x, 1)),
    ("log_softmax", (2, 3, 7), lambda M, x, p: M.log_softmax(x, -1)),
    ("maxout", (2, 3, 6), lambda M, x, p: M.maxout(x, 3)),
    ("linear", (2, 3, 7), lambda M, x, p: M.linear(x, p["wl"], p["b5"])),
]
IDS = [name for name, _, _ in OPS]


def _strided(rng, shape, dtype, how):
    """A non-contiguous view holding random values of `shape`."""
    if how == "step":  # every other element of the last dim, walked backwards
        return rand(rng, shape[:-1] + (2 * shape[-1],), dtype)[..., ::-2]
    if how == "transposed":  # Fortran order
        return rand(rng, shape[::-1], dtype).T
    if how == "sliced":  # an interior block of a bigger array
        big = rand(rng, tuple(s + 2 for s in shape), dtype)
        return big[tuple(slice(1, 1 + s) for s in shape)]
    raise ValueError(how)


@pytest.mark.parametrize("how", ["step", "transposed", "sliced"])
@pytest.mark.parametrize("name,shape,call", OPS, ids=IDS)
def test_strided_numpy_views(rng, name, shape, call, how):
    x = _strided(rng, shape, np.float32, how)
    assert not x.flags.c_contiguous
    p = {k: np.asfortranarray(v) for k, v in _params(np.float32).items()}  # strided weights too
    before = x.copy()
    y = call(F, x, p)
    np.testing.assert_array_equal(x, before)  # the input is not touched
    np.testing.assert_array_equal(y, call(F, np.ascontiguousarray(x), _params(np.float32)))
    assert_close(y, call(R, x, p), dtype=np.float32, what=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,call", OPS, ids=IDS)
def test_torch_tensors_in_torch_out(torch, rng, name, shape, call, dtype):
    x = rand(rng, shape, dtype)
    p = _params(dtype)
    expected = call(F, x, p)
    tx = torch.from_numpy(x)
    tp = {k: torch.from_numpy(v) for k, v in p.items()}
    y = call(F, tx, tp)
    assert isinstance(y, torch.Tensor)
    assert y.dtype == tx.dtype
    np.testing.assert_array_equal(y.numpy(), expected)
    # a non-contiguous tensor, and one that requires grad, are read too
    y2 = call(F, torch.from_numpy(x.copy()).requires_grad_(True), tp)
    np.testing.assert_array_equal(y2.detach().numpy(), expected)
    tt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, -1))).transpose(0, -1)
    assert not tt.is_contiguous()
    np.testing.assert_array_equal(call(F, tt, tp).numpy(), expected)


def test_torch_max_pool_indices_are_torch(torch, rng):
    x = torch.from_numpy(rand(rng, (1, 2, 6, 6), np.float32))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64
    assert torch.equal(y, ty) and torch.equal(idx, tidx)


@pytest.mark.parametrize("name,shape,call", OPS[:-1], ids=IDS[:-1])  # all but linear
def test_empty_batch(rng, name, shape, call):
    x = np.zeros((0,) + shape[1:], dtype=np.float32)
    p = _params(np.float32)
    y = call(F, x, p)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert y.shape == call(R, x, p).shape and y.shape[0] == 0


def test_empty_batch_linear_and_torch(torch):
    p = _params(np.float32)
    assert F.linear(np.zeros((0, 7), np.float32), p["wl"], p["b5"]).shape == (0, 5)
    y = F.conv2d(torch.zeros((0, 3, 8, 9)), torch.from_numpy(p["w2"]))
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (0, 4, 6, 8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,call", OPS, ids=IDS)
def test_dtype_kept(rng, name, shape, call, dtype):
    x = rand(rng, shape, dtype)
    p = _params(dtype)
    y = call(F, x, p)
    assert y.dtype == dtype
    assert_close(y, call(R, x, p), dtype=dtype, what=name)


# ops that take out=: (name, shape, call with out)
OUT_OPS = [
    ("conv2d", (2, 3, 8, 9), lambda x, p, out: F.conv2d(x, p["w2"], p["b4"], padding=1, out=out)),
    ("pad", (2, 3, 6, 7), lambda x, p, out: F.pad(x, (1, 2, 2, 1), mode="reflect", out=out)),
    ("max_pool2d", (2, 3, 8, 9), lambda x, p, out: F.max_pool2d(x, 3, 2, 1, out=out)),
    ("avg_pool3d", (2, 3, 5, 6, 4), lambda x, p, out: F.avg_pool3d(x, 2, out=out)),
    ("adaptive_avg_pool2d", (2, 3, 8, 9), lambda x, p, out: F.adaptive_avg_pool2d(x, 3, out=out)),
    ("gelu", (2, 3, 7), lambda x, p, out: F.gelu(x, out=out)),
    ("softmax", (2, 3, 7), lambda x, p, out: F.softmax(x, 1, out=out)),
    ("maxout", (2, 6, 7), lambda x, p, out: F.maxout(x, 2, out=out)),
    ("linear", (2, 3, 7), lambda x, p, out: F.linear(x, p["wl"], p["b5"], out=out)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape,call", OUT_OPS, ids=[o[0] for o in OUT_OPS])
def test_out(rng, name, shape, call, dtype):
    x = rand(rng, shape, dtype)
    p = _params(dtype)
    expected = call(x, p, None)
    out = np.full(expected.shape, np.nan, dtype=dtype)
    r = call(x, p, out)
    assert r is out
    np.testing.assert_array_equal(out, expected)


def test_out_torch_tensor(torch, rng):
    x = torch.from_numpy(rand(rng, (2, 3, 8, 9), np.float32))
    out = torch.full((2, 3, 4, 4), float("nan"))
    r = F.max_pool2d(x, 2, out=out)
    assert r is out
    assert torch.equal(out, torch.nn.functional.max_pool2d(x, 2))


def test_unary_out_may_alias_input(rng):
    x = rand(rng, (3, 50), np.float32)
    expected = F.sigmoid(x)
    r = F.sigmoid(x, out=x)
    assert r is x
    np.testing.assert_array_equal(x, expected)
