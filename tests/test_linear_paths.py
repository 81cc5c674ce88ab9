"""The dense layer and its gradients on every path of the packed GEMM (cpp/conv_gemm.h matmul_f32,
cpp/linear_avx2.cpp) against plain float64 numpy: one row block or several (B then packed once per
call), fewer outputs than a 16-column panel (y^T = w x^T), up to 4 outputs (dot products, and the
gradients in one pass over 1024-column chunks), K tails
that are not multiples of 8, K above the GEMM's 256-deep passes, no input features; on every kernel
variant this CPU runs and at 1-3 threads, and against torch where it is installed."""

import numpy as np
import pytest

import medconv
import medconv.functional as F
import medconv.functional.backward as B
from conftest import assert_close

# (M, K, N): rows, input features, outputs
SHAPES = [
    (7, 130, 3),      # dot products, K tail 2, a partial row block
    (5, 1000, 1),
    (9, 67, 4),
    (200, 300, 10),   # y^T = w x^T
    (130, 70, 500),   # two row blocks, B packed once
    (130, 600, 500),  # and in 3 K passes
    (450, 40, 20),    # five row blocks
    (16, 4099, 2),    # a small CNN's head, K tail 3
    (33, 520, 65),    # K in 3 passes
    (3, 0, 4),        # no input features: the bias
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_and_gradients(isa, maybe_torch, rng, dtype, threads):
    before = medconv.get_num_threads()
    medconv.set_num_threads(threads)
    try:
        for m, k, n in SHAPES:
            x = rng.standard_normal((m, k)).astype(dtype)
            w = rng.standard_normal((n, k)).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            gy = rng.standard_normal((m, n)).astype(dtype)
            x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
            what = f"M{m} K{k} N{n}"
            y = F.linear(x, w, b)
            assert_close(y, x64 @ w64.T + b, dtype=dtype, scale=4, what="forward " + what)
            gx, gw, gb = B.linear_backward(gy, x, w, b)
            assert_close(gx, gy64 @ w64, dtype=dtype, scale=4, what="grad_input " + what)
            assert_close(gw, gy64.T @ x64, dtype=dtype, scale=4, what="grad_weight " + what)
            assert_close(gb, gy64.sum(0), dtype=dtype, scale=4, what="grad_bias " + what)
            if maybe_torch is not None:
                t = maybe_torch.nn.functional.linear(*map(maybe_torch.from_numpy, (x, w, b))).numpy()
                assert_close(y, t, dtype=dtype, scale=4, what="torch " + what)
    finally:
        medconv.set_num_threads(before)


def test_same_bits_for_any_thread_count(rng):
    x = rng.standard_normal((130, 300)).astype(np.float32)
    w = rng.standard_normal((500, 300)).astype(np.float32)
    gy = rng.standard_normal((130, 500)).astype(np.float32)
    before = medconv.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            medconv.set_num_threads(t)
            results.append((F.linear(x, w), *B.linear_backward(gy, x, w)[:2], F.linear(x, w[:3])))
    finally:
        medconv.set_num_threads(before)
    for r in results[1:]:
        for a, e in zip(r, results[0]):
            np.testing.assert_array_equal(a, e)
