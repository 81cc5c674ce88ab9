"""The AVX2 resampling forward (cpp/interpolate_avx2.cpp) gathers 8 outputs of a row at a time with
the reference's taps and arithmetic: the same bits as the portable reference over random sizes,
scale factors and modes (row tails shorter than 8 included), at 1-3 threads. Its agreement with
torch is tested with the other ops (tests/test_backward.py::test_interpolate)."""

import numpy as np
import pytest

import medconv
import medconv.functional as F
import medconv.functional.backward as B
from medconv import _core

pytestmark = pytest.mark.skipif("avx2" not in medconv.backend_info()["supported_isas"], reason="an AVX2 kernel")

MODES = [("nearest", None, 1), ("nearest", None, 3), ("nearest-exact", None, 2), ("linear", False, 1),
         ("linear", True, 1), ("bilinear", False, 2), ("bilinear", True, 2), ("trilinear", False, 3),
         ("trilinear", True, 3)]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("mode,align_corners,nd", MODES)
def test_same_bits_as_the_reference(rng, mode, align_corners, nd, threads):
    before = medconv.get_num_threads()
    medconv.set_num_threads(threads)
    try:
        for trial in range(6):
            x = rng.standard_normal((2, 3) + tuple(int(v) for v in rng.integers(2, 13, nd))).astype(np.float32)
            if trial % 2:
                kw = dict(scale_factor=float(rng.choice([0.75, 1.7, 2.0, 3.0, 2.5])))
            else:
                kw = dict(size=tuple(int(v) for v in rng.integers(1, 37, nd)))
            if align_corners is not None:
                kw["align_corners"] = align_corners
            _core.select_isa("avx2")
            fast = F.interpolate(x, mode=mode, **kw)
            _core.select_isa("scalar")
            ref = F.interpolate(x, mode=mode, **kw)
            np.testing.assert_array_equal(fast, ref, err_msg=f"{mode} {x.shape} {kw}")
    finally:
        _core.select_isa("auto")
        medconv.set_num_threads(before)


@pytest.mark.parametrize("mode,align_corners,nd", MODES)
def test_backward_same_bits_as_the_reference(rng, mode, align_corners, nd):
    """The gradient: linear upsamplings as interpolate_backward.h's separable passes (compiled for
    each ISA), nearest upsamplings by integer factors as vector adds (the factor 2 along W 8 inputs
    at a time), the others as the reference's scatter specialised by tap counts; the same bits
    every way."""
    for trial in range(6):
        x = rng.standard_normal((2, 3) + tuple(int(v) for v in rng.integers(2, 21, nd))).astype(np.float32)
        factor = [1, 2, 3, 2.5][trial % 4]
        kw = dict(scale_factor=float(factor))
        if align_corners is not None:
            kw["align_corners"] = align_corners
        gy = rng.standard_normal(F.interpolate(x, mode=mode, **kw).shape).astype(np.float32)
        _core.select_isa("avx2")
        try:
            fast = B.interpolate_backward(gy, x, mode=mode, **kw)
            _core.select_isa("scalar")
            ref = B.interpolate_backward(gy, x, mode=mode, **kw)
        finally:
            _core.select_isa("auto")
        np.testing.assert_array_equal(fast, ref, err_msg=f"{mode} {x.shape} {kw}")
