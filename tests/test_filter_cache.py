"""The cache of transformed Winograd filters (cpp/filter_cache.h): a call on the same weights reuses
the filters made from them, bitwise as if transformed again; weights changed in place (anywhere,
by one bit), new arrays, changes on every call (training), a tight budget and concurrent callers all
give the results of a call without the cache."""

import threading

import numpy as np
import pytest

import medconv
import medconv.functional as F
import reference
from medconv import _core

VECTOR_ISAS = [i for i in medconv.backend_info()["supported_isas"] if i != "scalar"]
pytestmark = pytest.mark.skipif(not VECTOR_ISAS, reason="Winograd runs on the vector ISAs")


@pytest.fixture
def fresh_cache():
    before = _core.cache_info()["filter_limit_bytes"]
    _core.release_cache()
    _core.set_filter_cache_limit(256 << 20)
    try:
        yield
    finally:
        _core.set_filter_cache_limit(before)
        _core.release_cache()


def uncached(fn):
    """fn() with the filter cache off."""
    limit = _core.cache_info()["filter_limit_bytes"]
    _core.set_filter_cache_limit(0)
    try:
        return fn()
    finally:
        _core.set_filter_cache_limit(limit)


def layer(rng, c=128, oc=128, n=2, hw=16):
    """A 3x3 layer the planner gives to Winograd, with weights of 256 KiB and more (cached)."""
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((oc, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("isa", VECTOR_ISAS)
def test_reuse_gives_the_bits_of_a_fresh_transform(fresh_cache, rng, isa):
    x, w, b = layer(rng)
    _core.select_isa(isa)
    try:
        first = F.conv2d(x, w, b, padding=1)
        assert _core.cache_info()["filter_cached_bytes"] == 0  # weights seen once are not copied
        second = F.conv2d(x, w, b, padding=1)
        assert _core.cache_info()["filter_cached_bytes"] >= w.nbytes * 5  # the copy and 4x in filters
        again = [F.conv2d(x, w, b, padding=1, activation=a) for a in (None, "relu")]
        want = uncached(lambda: [F.conv2d(x, w, b, padding=1, activation=a) for a in (None, "relu")])
    finally:
        _core.select_isa("auto")
    np.testing.assert_array_equal(first, want[0])
    np.testing.assert_array_equal(second, want[0])
    np.testing.assert_array_equal(again[0], want[0])
    np.testing.assert_array_equal(again[1], want[1])


def test_weights_changed_in_place_are_seen(fresh_cache, rng):
    x, w, b = layer(rng)
    F.conv2d(x, w, b, padding=1)
    F.conv2d(x, w, b, padding=1)
    flat = w.reshape(-1)
    for index in (0, flat.size // 2, flat.size - 1):  # the first, a middle and the last weight
        flat[index] = np.nextafter(flat[index], np.float32(np.inf))  # one bit
        got = F.conv2d(x, w, b, padding=1)
        np.testing.assert_array_equal(got, uncached(lambda: F.conv2d(x, w, b, padding=1)))
        F.conv2d(x, w, b, padding=1)  # seen again,
        F.conv2d(x, w, b, padding=1)  # cached again


def test_other_arrays_and_other_shapes(fresh_cache, rng):
    x, w, b = layer(rng)
    F.conv2d(x, w, b, padding=1)
    for _ in range(3):  # new weight arrays, which may reuse a freed array's address
        w2 = (w * np.float32(rng.uniform(0.5, 2.0))).astype(np.float32)
        np.testing.assert_array_equal(F.conv2d(x, w2, b, padding=1), uncached(lambda: F.conv2d(x, w2, b, padding=1)))
        del w2
    # the same memory as other shapes: other transforms, other entries (K = KD * C the same in the
    # last two, split otherwise)
    flat = w.reshape(-1)
    cases = [((64, 256, 3, 3), (2, 256, 16, 16), 1), ((256, 64, 3, 3), (2, 64, 16, 16), 1),
             ((256, 64, 3, 3), (2, 128, 16, 16), 2), ((64, 128, 2, 3, 3), (2, 128, 4, 16, 16), 1)]
    calls = []
    for wshape, xshape, groups in cases:
        v, xv = flat.reshape(wshape), rng.standard_normal(xshape).astype(np.float32)
        conv = F.conv3d if len(wshape) == 5 else F.conv2d
        calls.append(lambda conv=conv, xv=xv, v=v, groups=groups: conv(xv, v, None, padding=1, groups=groups))
    want = [uncached(call) for call in calls]  # (the limit 0 of uncached() empties the cache)
    for _ in range(3):  # seen, cached, taken from the cache
        for call, expected in zip(calls, want):
            np.testing.assert_array_equal(call(), expected)
    assert _core.cache_info()["filter_cached_bytes"] >= 4 * w.nbytes * 5  # four entries


def test_weights_changing_on_every_call(fresh_cache, rng):
    # a training loop: every call sees new weights (in place); after two misses the layer's weights
    # are not copied for a while, and every result is still the uncached one
    x, w, b = layer(rng)
    for step in range(40):
        w -= np.float32(1e-3) * np.sign(w)
        got = F.conv2d(x, w, b, padding=1)
        if step % 7 == 0:
            np.testing.assert_array_equal(got, uncached(lambda: F.conv2d(x, w, b, padding=1)))
    assert _core.cache_info()["filter_cached_bytes"] <= w.nbytes * 5 + (1 << 20)


def test_a_tight_budget_evicts_and_stays_exact(fresh_cache, rng):
    layers = [layer(rng) for _ in range(3)]
    one = layers[0][1].nbytes * 5 + (1 << 20)
    _core.set_filter_cache_limit(one)  # room for one layer's entry
    want = [uncached(lambda x=x, w=w, b=b: F.conv2d(x, w, b, padding=1)) for x, w, b in layers]
    for _ in range(3):
        for (x, w, b), expected in zip(layers, want):
            np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1), expected)
            assert _core.cache_info()["filter_cached_bytes"] <= one
    _core.set_filter_cache_limit(1024)  # too small for any entry: nothing cached, still exact
    for (x, w, b), expected in zip(layers, want):
        np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1), expected)
    assert _core.cache_info()["filter_cached_bytes"] == 0


def test_release_cache_drops_the_filters(fresh_cache, rng):
    x, w, b = layer(rng)
    F.conv2d(x, w, b, padding=1)
    F.conv2d(x, w, b, padding=1)
    assert _core.cache_info()["filter_cached_bytes"] > 0
    _core.release_cache()
    assert _core.cache_info()["filter_cached_bytes"] == 0
    np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1), uncached(lambda: F.conv2d(x, w, b, padding=1)))


def test_gradients_do_not_fill_the_cache(fresh_cache, rng):
    # the input gradient (and the transposed conv) runs Winograd on flipped weights made for the call
    from medconv.functional import backward as B
    x, w, b = layer(rng)
    gy = rng.standard_normal((2, 128, 16, 16)).astype(np.float32)
    for _ in range(3):
        gx = B.conv2d_backward(gy, x, w, b, padding=1)[0]
        ut = F.conv_transpose2d(gy, w, None, padding=1)
    assert _core.cache_info()["filter_cached_bytes"] == 0
    np.testing.assert_array_equal(gx, uncached(lambda: B.conv2d_backward(gy, x, w, b, padding=1)[0]))
    np.testing.assert_array_equal(ut, uncached(lambda: F.conv_transpose2d(gy, w, None, padding=1)))


def test_cached_filters_against_the_reference_and_torch(fresh_cache, rng, maybe_torch):
    # calls served from the cache, against the float64 reference (Winograd's bound, test_winograd.py)
    # and torch
    x, w, b = layer(rng, c=96, oc=160, n=3, hw=14)
    want = reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
    for call in range(3):  # seen, cached, from the cache
        got = F.conv2d(x, w, b, padding=1)
        assert np.max(np.abs(got - want)) <= 5e-5 * np.max(np.abs(want)), f"call {call}"
    assert _core.cache_info()["filter_cached_bytes"] >= w.nbytes * 5
    if maybe_torch is not None:
        t = maybe_torch.nn.functional.conv2d(*map(maybe_torch.from_numpy, (x, w, b)), padding=1).numpy()
        assert np.max(np.abs(got - t)) <= 5e-5 * np.max(np.abs(t))


def test_set_filter_cache_limit_rejects_negative():
    with pytest.raises(ValueError, match="filter cache limit"):
        _core.set_filter_cache_limit(-1)


def test_concurrent_callers(fresh_cache, rng):
    # Python threads on layers of their own (and one shared), while another changes its weights:
    # every result matches its uncached value
    layers = [layer(rng) for _ in range(3)]
    want = [uncached(lambda x=x, w=w, b=b: F.conv2d(x, w, b, padding=1)) for x, w, b in layers]
    errors = []

    def run(i):
        try:
            x, w, b = layers[i % 3]
            for _ in range(6):
                got = F.conv2d(x, w, b, padding=1)
                if not np.array_equal(got, want[i % 3]):
                    errors.append(f"thread {i}: differs")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
