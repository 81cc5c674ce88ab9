"""Thread count control, the same bits for every thread count, and concurrent callers."""

import threading
import time

import numpy as np
import pytest

import medconv as mc
import medconv.functional as F
import reference as R
from conftest import assert_close, rand


@pytest.fixture
def restore_threads():
    before = mc.get_num_threads()
    yield
    mc.set_num_threads(before)


def _work(seed=7):
    """Ops big enough to be split over threads (each over the bindings' kSerialWork of 65536 elements
    or multiply-adds), each with its own input, and a tiny one that stays on the calling thread."""
    g = np.random.default_rng(seed)
    x_tiny, w_tiny = rand(g, (1, 4, 8, 8), np.float32), rand(g, (4, 4, 3, 3), np.float32)
    x4 = rand(g, (3, 8, 80, 74), np.float32)
    x5 = rand(g, (2, 4, 24, 26, 22), np.float64)
    w4 = rand(g, (12, 8, 3, 3), np.float32)
    w5 = rand(g, (6, 2, 3, 2, 3), np.float64)
    xl, wl = rand(g, (70, 96), np.float32), rand(g, (50, 96), np.float32)
    return [
        ("conv2d", lambda: F.conv2d(x4, w4, padding=1, stride=(1, 2))),
        ("conv3d", lambda: F.conv3d(x5, w5, padding="same", groups=2)),
        ("max_pool2d", lambda: F.max_pool2d(x4, 3, 2, 1, return_indices=True)[1]),
        ("avg_pool3d", lambda: F.avg_pool3d(x5, 3, 2, 1, count_include_pad=False)),
        ("adaptive_avg_pool2d", lambda: F.adaptive_avg_pool2d(x4, (5, 7))),
        ("pad", lambda: F.pad(x5, (2, 1, 1, 2, 3, 0), mode="reflect")),
        ("gelu", lambda: F.gelu(x4)),
        ("softmax", lambda: F.softmax(x4, 1)),
        ("log_softmax", lambda: F.log_softmax(x5, -1)),
        ("maxout", lambda: F.maxout(x4, 4)),
        ("linear", lambda: F.linear(xl, wl)),
        ("tiny conv2d", lambda: F.conv2d(x_tiny, w_tiny, padding=1)),
    ]


def test_set_get(restore_threads):
    for n in [1, 2, 3, 5]:
        mc.set_num_threads(n)
        assert mc.get_num_threads() == n
        assert mc.backend_info()["num_threads"] == n


@pytest.mark.parametrize("bad", [0, -1])
def test_set_bad_value(restore_threads, bad):
    with pytest.raises(ValueError, match=r"(?i)thread"):
        mc.set_num_threads(bad)


@pytest.mark.parametrize("bad", ["2", 2.0, None])
def test_set_bad_type(restore_threads, bad):
    with pytest.raises((TypeError, ValueError), match=r"(?i)thread"):
        mc.set_num_threads(bad)


def test_same_bits_for_1_2_3_threads(restore_threads, isa):
    results = {}
    for n in [1, 2, 3]:
        mc.set_num_threads(n)
        for name, call in _work():
            a, b = call(), call()
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: two runs with {n} threads differ")
            results.setdefault(name, []).append(a)
    for name, (r1, r2, r3) in results.items():
        np.testing.assert_array_equal(r1, r2, err_msg=f"{name}: 1 vs 2 threads")
        np.testing.assert_array_equal(r1, r3, err_msg=f"{name}: 1 vs 3 threads")


def test_results_are_right_with_threads(restore_threads):
    mc.set_num_threads(3)
    g = np.random.default_rng(3)
    x, w, b = rand(g, (2, 6, 17, 15)), rand(g, (9, 2, 3, 3)), rand(g, (9,))
    kw = dict(padding="same", groups=3, padding_mode="circular")
    assert_close(F.conv2d(x, w, b, **kw), R.conv2d(x, w, b, **kw))


def test_concurrent_python_threads(restore_threads):
    mc.set_num_threads(2)
    work = _work()
    expected = {name: call() for name, call in work}
    errors = []
    barrier = threading.Barrier(4)

    def worker(k):
        try:
            barrier.wait()
            for rep in range(6):
                for name, call in work[k::2] + work[(k + 1) % 2::2]:
                    got = call()
                    if not np.array_equal(got, expected[name]):
                        errors.append(f"thread {k} rep {rep}: {name} differs")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"thread {k}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not errors, errors[:5]


@pytest.mark.parametrize("threads", [2, 3])
def test_jobs_between_sleeps_and_back_to_back(restore_threads, threads):
    # the caller wakes the workers, runs what chunks are left and returns without waiting for workers
    # still asleep: workers waking late, into the next job or none, must leave every result right and
    # nothing hung; pauses on either side of the workers' spin time, and none at all
    mc.set_num_threads(1)
    work = _work(seed=11)
    expected = {name: call() for name, call in work}
    mc.set_num_threads(threads)
    pauses = np.random.default_rng(5).choice([0.0, 0.0, 2e-5, 1e-4, 4e-4], size=40 * len(work))
    for i, pause in enumerate(pauses):
        name, call = work[i % len(work)]
        if pause:
            time.sleep(pause)
        np.testing.assert_array_equal(call(), expected[name], err_msg=f"{name}, call {i}, {threads} threads")
