"""The fused DICOM pixel kernel (cpp/dicom_*.cpp) against an obvious numpy oracle, bit for bit,
for every dtype, every compiled variant this CPU runs and any thread count."""
import os
import subprocess
import sys

import numpy as np
import pytest

import medconv
import medconv.dicom as md

core = pytest.importorskip("medconv._core")
ISAS = core.dicom_isas() if hasattr(core, "dicom_isas") else ["scalar"]
INT_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]


def oracle(x, slope=1.0, intercept=0.0, bits=0, window=None, invert=False):
    """The kernel's contract in plain numpy: float64 arithmetic, the same order, one rounding to
    float32 for the modality value and one for the windowed value."""
    x = np.asarray(x)
    if bits and x.dtype.kind == "u":
        v = (x.astype(np.uint64) & ((1 << bits) - 1)).astype(np.float64)
    elif bits and x.dtype.kind == "i":
        shift = 64 - bits
        v = ((x.astype(np.int64) << shift) >> shift).astype(np.float64)
    else:
        v = x.astype(np.float64)
    m = (v * slope + intercept).astype(np.float32)
    if window is None:
        return m
    c, w = window
    md_ = m.astype(np.float64)
    if w == 1:
        y = np.where(md_ > c - 0.5, 1.0, 0.0)
    else:
        y = np.clip((md_ - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    if invert:
        y = 1.0 - y
    return y.astype(np.float32)


def random_stored(rng, dtype, n):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dtype)


def run(x, isa, **kw):
    out = np.empty(x.shape, np.float32)
    window = kw.pop("window", None)
    center, width = window if window is not None else (None, None)
    core.dicom_rescale(x, out, center=center, width=width, isa=isa, **kw)
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 1000, 70001])
def test_rescale_matches_oracle_bitwise(isa, dtype, n):
    rng = np.random.default_rng(n)
    x = random_stored(rng, dtype, n)
    for slope, intercept in [(1.0, 0.0), (1.0, -1024.0), (0.684, 200.0), (2.5e-5, -3.25), (-1.0, 7.0)]:
        got = run(x, isa, slope=slope, intercept=intercept)
        np.testing.assert_array_equal(got, oracle(x, slope, intercept), err_msg=f"{slope} {intercept}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_bits_stored_masks_and_sign_extends(isa, dtype):
    rng = np.random.default_rng(1)
    x = random_stored(rng, dtype, 1003)
    width = 8 * np.dtype(dtype).itemsize
    for bits in sorted({1, 5, width // 2, width - 4, width - 1, width} - {0}):
        got = run(x, isa, slope=1.0, intercept=0.0, bits_stored=bits)
        np.testing.assert_array_equal(got, oracle(x, bits=bits if bits < width else 0), err_msg=f"bits {bits}")


def test_bits_stored_matches_pydicom_convention():
    # 12-bit unsigned with junk in the high bits; 12-bit signed 0x0FFF is -1 (pydicom's pixel_array does the same)
    assert md.rescale(np.array([0xF123], np.uint16), bits_stored=12)[0] == 0x123
    assert md.rescale(np.array([0x0FFF], np.uint16).view(np.int16), bits_stored=12)[0] == -1


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", INT_DTYPES + [np.float32])
@pytest.mark.parametrize("window", [(40.0, 80.0), (-600.0, 1500.0), (0.0, 1.0), (3.5, 2.0), (1e4, 3e4)])
@pytest.mark.parametrize("invert", [False, True])
def test_window_matches_oracle_bitwise(isa, dtype, window, invert):
    rng = np.random.default_rng(2)
    if dtype == np.float32:
        x = (rng.standard_normal(4099) * 800).astype(np.float32)
    else:
        x = random_stored(rng, dtype, 4099)
    got = run(x, isa, slope=0.5, intercept=-1024.0, window=window, invert=invert)
    np.testing.assert_array_equal(got, oracle(x, 0.5, -1024.0, window=window, invert=invert))
    assert got.min() >= 0 and got.max() <= 1


@pytest.mark.parametrize("isa", ISAS)
def test_float32_special_values(isa):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 39.5, 40.5] * 3, np.float32)
    got = run(x, isa, window=(40.0, 80.0))
    np.testing.assert_array_equal(got, oracle(x, window=(40.0, 80.0)))
    assert np.isnan(got[0]) and got[1] == 1 and got[2] == 0


@pytest.mark.parametrize("isa", ISAS)
def test_uint32_extremes(isa):
    x = np.array([0, 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1] * 3, np.uint32)
    np.testing.assert_array_equal(run(x, isa, slope=1.0), x.astype(np.float64).astype(np.float32))


def test_variants_agree_and_threads_do_not_change_bits():
    rng = np.random.default_rng(3)
    x = random_stored(rng, np.int16, 3 * 65536 + 17)
    results = []
    saved = medconv.get_num_threads()
    try:
        for threads in (1, 2, 3):
            medconv.set_num_threads(threads)
            for isa in ISAS:
                results.append(run(x, isa, slope=0.3, intercept=-7.0, window=(40.0, 400.0)))
    finally:
        medconv.set_num_threads(saved)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_auto_variant_is_the_fastest_runnable():
    assert core.dicom_isas()[-1] == "scalar"
    assert core.dicom_isa() in core.dicom_isas()


def test_medconv_isa_scalar_forces_the_reference():
    env = dict(os.environ, MEDCONV_ISA="scalar")
    code = "import medconv._core as c; print(c.dicom_isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "scalar"


def test_rescale_writes_into_a_volume_slice():
    vol = np.full((3, 4, 5), -1.0, np.float32)
    x = np.arange(20, dtype=np.int16).reshape(4, 5)
    md.rescale(x, 2.0, -3.0, out=vol[1])
    np.testing.assert_array_equal(vol[1], x * 2.0 - 3.0)
    assert np.all(vol[0] == -1) and np.all(vol[2] == -1)


def test_rescale_accepts_strided_and_big_endian_input():
    x = np.arange(40, dtype=np.int16).reshape(5, 8)[:, ::2]
    np.testing.assert_array_equal(md.rescale(x, 1.0, 1.0), x + 1.0)
    big = np.arange(10, dtype=">u2")
    np.testing.assert_array_equal(md.rescale(big, 3.0), np.arange(10) * 3.0)


def test_in_place_float32_window():
    x = np.linspace(-100, 200, 1001, dtype=np.float32)
    expected = oracle(x, window=(50.0, 100.0))
    md.rescale(x, window=(50.0, 100.0), out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("bad, match", [
    (dict(stored=np.zeros(4, np.float64)), "stored must be int8"),
    (dict(stored=np.zeros(4, np.int64)), "stored must be int8"),
    (dict(stored=np.zeros(4, bool)), "stored must be int8"),
])
def test_rescale_type_errors(bad, match):
    with pytest.raises(TypeError, match=match):
        md.rescale(**bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(invert=True), "invert=True needs a window"),
    (dict(slope=float("nan")), "slope must be a finite number"),
    (dict(intercept=float("inf")), "intercept must be a finite number"),
    (dict(bits_stored=17), r"bits_stored must be None or 1\.\.16"),
    (dict(bits_stored=0), r"bits_stored must be None or 1\.\.16"),
    (dict(window=(40.0, 0.5)), "window width must be >= 1"),
    (dict(window="lungs"), "window must be one of"),
    (dict(out=np.zeros(5, np.float32)), "out must be a float32 numpy array of shape"),
    (dict(out=np.zeros(4, np.float64)), "out must be a float32 numpy array of shape"),
    (dict(out=np.zeros(8, np.float32)[::2]), "out must be C-contiguous"),
])
def test_rescale_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        md.rescale(np.zeros(4, np.int16), **kwargs)


def test_kernel_binding_checks_what_python_promised():
    x = np.zeros(4, np.int16)
    with pytest.raises(ValueError, match="x has 4 elements, out has 3"):
        core.dicom_rescale(x, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        core.dicom_rescale(np.zeros(8, np.int16)[::2], np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="must be int8"):
        core.dicom_rescale(np.zeros(4, ">i2"), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="read-only"):
        out = np.zeros(4, np.float32)
        out.flags.writeable = False
        core.dicom_rescale(x, out)
    with pytest.raises(ValueError, match="isa 'avx9' is not available"):
        core.dicom_rescale(x, np.zeros(4, np.float32), isa="avx9")
    with pytest.raises(ValueError, match="both center and width"):
        core.dicom_rescale(x, np.zeros(4, np.float32), center=1.0)
