"""Repeated calls on the same shapes skip the argument checks (functional/_args.py's ValidatedCalls):
the same results as a first, checked call; changed values are read anew; bad arguments are still
refused; medconv.nn's Parameters take the cached path like plain arrays."""
import numpy as np
import pytest

import medconv.functional as F
import medconv.nn as nn
from medconv.functional import activation as activation_module
from medconv.functional import conv as conv_module
import reference as R
from conftest import assert_close


def _batch_norm(x, rm, rv, w, b, training, momentum, eps):
    """(y, new running mean, new running var) in float64, as torch: the running variance unbiased."""
    x64 = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x64.mean(axis=axes), x64.var(axis=axes)
        n = x64.size / x64.shape[1]
        rm = (1 - momentum) * rm + momentum * mean
        rv = (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    y = (x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * w.astype(np.float64).reshape(shape) + b.astype(np.float64).reshape(shape), rm, rv


def test_linear_repeated_calls(rng):
    x = rng.standard_normal((5, 3, 7)).astype(np.float32)
    w = rng.standard_normal((4, 7)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    first = F.linear(x, w, b)
    assert_close(first, R.linear(x.astype(np.float64), w, b), dtype=np.float32)
    np.testing.assert_array_equal(F.linear(x, w, b), first)
    np.testing.assert_array_equal(F.linear(np.asfortranarray(x), w, b), first)  # copied, not misread
    w2 = w * 2
    assert_close(F.linear(x, w2, b), R.linear(x.astype(np.float64), w2, b), dtype=np.float32)
    out = np.empty((5, 3, 4), np.float32)
    assert F.linear(x, w, b, out=out) is out
    np.testing.assert_array_equal(out, first)
    with pytest.raises(ValueError, match="out has shape"):
        F.linear(x, w, b, out=np.empty((5, 3, 5), np.float32))
    with pytest.raises(TypeError, match="weight has dtype"):
        F.linear(x, w.astype(np.float64), b)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(x, w, b[:3])
    np.testing.assert_array_equal(F.linear(x, w), F.linear(x, w, np.zeros(4, np.float32)))


@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_repeated_calls(rng, training):
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    rm, rv = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    w, b = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    want_rm, want_rv = rm.copy(), rv.copy()
    for step in range(3):  # the first call is checked, the next ones take the cached path
        y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
        want, want_rm, want_rv = _batch_norm(x, want_rm, want_rv, w, b, training, 0.1, 1e-5)
        assert_close(y, want, dtype=np.float32, what=f"step {step}")
        assert_close(rm, want_rm, dtype=np.float32, what=f"running_mean, step {step}")
        assert_close(rv, want_rv, dtype=np.float32, what=f"running_var, step {step}")
    with pytest.raises(ValueError, match="eps"):
        F.batch_norm(x, rm, rv, w, b, training=training, eps=-1.0)
    with pytest.raises(TypeError, match="training"):
        F.batch_norm(x, rm, rv, w, b, training=int(training))
    with pytest.raises(TypeError, match="momentum"):
        F.batch_norm(x, rm, rv, w, b, training=True, momentum="0.1")
    with pytest.raises(ValueError, match="weight must have shape"):
        F.batch_norm(x, rm, rv, w[:3], b, training=training)
    with pytest.raises(ValueError, match="out has shape"):
        F.batch_norm(x, rm, rv, w, b, training=training, out=np.empty((3, 4, 5, 5), np.float32))


def test_layers_with_parameters_take_the_cached_path(rng):
    conv, lin, bn = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3 * 4 * 4, 5), nn.BatchNorm2d(3)
    bn.eval()
    bn.running_mean[...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    for step in range(3):  # parameters changed in place between calls are read anew
        y = conv(x)
        assert_close(y, R.conv2d(x, np.asarray(conv.weight), np.asarray(conv.bias), 1, 1), dtype=np.float32)
        z = bn(y)
        want_z, _, _ = _batch_norm(y, bn.running_mean, bn.running_var, np.asarray(bn.weight), np.asarray(bn.bias),
                                   False, 0.1, bn.eps)
        assert_close(z, want_z, dtype=np.float32)
        flat = z.reshape(2, -1)
        assert_close(lin(flat), R.linear(flat.astype(np.float64), np.asarray(lin.weight), np.asarray(lin.bias)),
                     dtype=np.float32)
        for p in (conv.weight, conv.bias, lin.weight, bn.weight, bn.bias):
            p *= np.float32(-0.5)
    # the calls above were cached: Parameters are keys like plain arrays
    args = (2, conv.stride, conv.padding, conv.dilation, conv.groups, None)
    calls = conv_module._CALLS
    assert calls.get(calls.key((x, conv.weight, conv.bias), args)) is not None
    calls = activation_module._LINEAR_CALLS
    assert calls.get(calls.key((flat, lin.weight, lin.bias), ())) is not None


def test_conv_transpose_repeated_calls(rng):
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    first = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    assert_close(first, R.conv_transpose(x, w, b, 2, 1, 1), dtype=np.float32)
    np.testing.assert_array_equal(F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1), first)
    strided = np.asfortranarray(x)  # copied on the cached path, not misread
    np.testing.assert_array_equal(F.conv_transpose2d(strided, w, b, stride=2, padding=1, output_padding=1), first)
    out = np.empty_like(first)
    assert F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, out=out) is out
    np.testing.assert_array_equal(out, first)
    with pytest.raises(ValueError, match="out has shape"):
        F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, out=np.empty((2, 3, 10, 11), np.float32))
    with pytest.raises(TypeError, match="stride"):
        F.conv_transpose2d(x, w, b, stride=2.0, padding=1, output_padding=1)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=2)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_repeated_calls(rng, log):
    f = F.log_softmax if log else F.softmax
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    want = (R.log_softmax if log else R.softmax)(x.astype(np.float64), 1)
    for _ in range(3):
        assert_close(f(x, 1), want, dtype=np.float32)
    assert_close(f(np.asfortranarray(x), 1), want, dtype=np.float32)  # copied on the cached path, not misread
    out = np.empty_like(x)
    assert f(x, 1, out=out) is out
    assert_close(out, want, dtype=np.float32)
    with pytest.raises(ValueError, match="out has shape"):
        f(x, 1, out=np.empty((3, 5, 5), np.float32))
    with pytest.raises(TypeError, match="dim"):
        f(x, 1.0)
    with pytest.raises(ValueError, match="dim"):
        f(x, 3)


def test_cached_calls_return_the_callers_out(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    for call, shape in [(lambda out: F.pad(x, (1, 1, 1, 1), out=out), (1, 2, 6, 6)),
                        (lambda out: F.conv2d(x, w, padding=1, out=out), (1, 3, 4, 4)),
                        (lambda out: F.softmax(x, 1, out=out), (1, 2, 4, 4)),
                        (lambda out: F.max_pool2d(x, 2, out=out), (1, 2, 2, 2))]:
        for _ in range(2):  # checked, then cached
            out = torch.empty(shape)
            assert call(out) is out


def test_arguments_of_another_type_are_checked_again(rng):
    # under numpy's legacy printing np.float32(0.1) and 0.1 have one repr, not one value
    x = rng.standard_normal((2, 3, 4))
    rm, rv = np.zeros(3), np.zeros(3)
    with np.printoptions(legacy="1.25"):
        for eps in (0.1, np.float32(0.1), 0.1):
            y = F.batch_norm(x, rm, rv, training=False, eps=eps)
            np.testing.assert_allclose(y, x / np.sqrt(float(eps)), rtol=1e-13, err_msg=repr(type(eps)))


def test_keys_tell_apart_what_checks_or_results_tell_apart():
    from medconv.functional._args import ValidatedCalls
    calls = ValidatedCalls()
    x = np.zeros((2, 3), np.float32)
    keys = [calls.key((x,), args) for args in [(1,), (True,), (1.0,), (0.0,), (-0.0,), (np.int64(1),), ((1, 1),),
                                               ((1, 1.0),), ("same",), (None,), ([1, 1],)]]
    assert len(set(keys)) == len(keys)
    assert calls.key((x,), (2, None, "valid")) == calls.key((x.copy(),), (2, None, "valid"))
    assert calls.key((x,), (2,)) != calls.key((x.astype(np.float64),), (2,))
