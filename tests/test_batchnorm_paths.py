"""Batch norm's kernels (cpp/batchnorm_avx2.cpp, the reference batchnorm_ref.cpp) against plain float64
numpy: statistics, normalisation and gradients, training and inference, with and without affine
parameters, rows that are not multiples of 8 floats (masked tails), CT-like data (values near 1000
with small variations: a variance from a sum of squares would cancel); on every kernel variant this
CPU runs, at 1-3 threads, and with the same bits for any thread count."""

import numpy as np
import pytest

import medconv
import medconv.functional.backward as B
from conftest import assert_close
from medconv.functional import extra as E

SHAPES = [(4, 3, 13), (2, 5, 7, 9), (8, 16, 64), (3, 2, 2, 3, 5), (2, 4, 1), (16, 7)]


def _reference(x, w, b, training, rm, rv, gy, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    mean = x64.mean(axis=axes) if training else rm.astype(np.float64)
    var = x64.var(axis=axes) if training else rv.astype(np.float64)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x64 - mean.reshape(shape)) * invstd.reshape(shape)
    g = np.ones(x.shape[1]) if w is None else w.astype(np.float64)
    y = xhat * g.reshape(shape) + (0.0 if b is None else b.astype(np.float64).reshape(shape))
    gb = gy64.sum(axis=axes)
    gw = (gy64 * xhat).sum(axis=axes)
    m = x64.size / x64.shape[1]
    k = (g * invstd).reshape(shape)
    gx = k * (gy64 - gb.reshape(shape) / m - xhat * gw.reshape(shape) / m) if training else k * gy64
    return y, gx, gw, gb, np.abs(k * gy64).max()


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_against_numpy(isa, rng, dtype, training, threads):
    before = medconv.get_num_threads()
    medconv.set_num_threads(threads)
    try:
        for i, shape in enumerate(SHAPES):
            c = shape[1]
            x = (rng.standard_normal(shape) * 3 + (1000 if i % 2 else 1)).astype(dtype)
            w = rng.standard_normal(c).astype(dtype) if i % 3 else None
            b = rng.standard_normal(c).astype(dtype) if i % 3 else None
            rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
            gy = rng.standard_normal(shape).astype(dtype)
            ry, rgx, rgw, rgb, terms = _reference(x, w, b, training, rm, rv, gy)
            y = E.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)
            what = f"{shape} training={training} affine={w is not None}"
            assert_close(y, ry, dtype=dtype, scale=20, what="forward " + what)
            gx, gw, gb = B.batch_norm_backward(gy, x, rm.copy(), rv.copy(), w, b, training=training)
            # training's gx is a difference of terms of size |gamma invstd gy|: measured against those
            tol = (1e-5 if dtype == np.float32 else 1e-10) * 20
            np.testing.assert_allclose(gx, rgx, rtol=tol, atol=tol * terms, err_msg="grad_input " + what)
            if w is not None:
                assert_close(gw, rgw, dtype=dtype, scale=20, what="grad_weight " + what)
                assert_close(gb, rgb, dtype=dtype, scale=20, what="grad_bias " + what)
    finally:
        medconv.set_num_threads(before)


def test_same_bits_for_any_thread_count(rng):
    x = rng.standard_normal((6, 16, 1000)).astype(np.float32)  # over kSerialWork: split over the threads
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    before = medconv.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            medconv.set_num_threads(t)
            rm, rv = np.zeros(16, np.float32), np.ones(16, np.float32)
            y = E.batch_norm(x, rm, rv, w, b, training=True)
            results.append((y, rm, rv, *B.batch_norm_backward(gy, x, rm, rv, w, b, training=True)))
    finally:
        medconv.set_num_threads(before)
    for r in results[1:]:
        for a, e in zip(r, results[0]):
            np.testing.assert_array_equal(a, e)
