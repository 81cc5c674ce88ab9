"""Run-time kernel choice, backend_info, thread settings and the output-buffer cache."""
import os
import subprocess
import sys

import numpy as np
import pytest

import medconv as mc
from medconv import _core


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_backend_info_describes_the_build_and_cpu():
    info = mc.backend_info()
    assert info["isa"] in info["supported_isas"]
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert "scalar" in info["supported_isas"]
    assert info["num_threads"] == mc.get_num_threads() >= 1
    if "avx2" in info["cpu_features"] and "fma" in info["cpu_features"]:
        assert "avx2" in info["supported_isas"]
    if "avx512f" not in info["cpu_features"]:
        assert "avx512" not in info["supported_isas"]  # compiled, but the CPU lacks it: not chosen


def test_env_var_forces_the_reference_path():
    result = _run("import medconv; print(medconv.backend_info()['isa'])", MEDCONV_ISA="scalar")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "scalar"


def test_unusable_isa_falls_back_with_a_warning():
    code = "import warnings; warnings.simplefilter('always'); import medconv; print(medconv.backend_info()['isa'])"
    result = _run(code, MEDCONV_ISA="avx9000")
    assert result.returncode == 0, result.stderr
    assert "MEDCONV_ISA" in result.stderr and "ignored" in result.stderr
    assert result.stdout.strip() == mc.backend_info()["supported_isas"][-1]


def test_select_isa_rejects_unknown_and_unsupported():
    with pytest.raises(ValueError, match="MEDCONV_ISA must be one of"):
        _core.select_isa("sse1")
    missing = [i for i in ("avx512", "neon", "avx2") if i not in mc.backend_info()["supported_isas"]]
    for isa in missing:
        with pytest.raises(ValueError, match="not"):
            _core.select_isa(isa)


def test_num_threads_env_and_setter():
    result = _run("import medconv; print(medconv.get_num_threads())", MEDCONV_NUM_THREADS="3")
    assert result.stdout.strip() == "3"
    before = mc.get_num_threads()
    try:
        mc.set_num_threads(1)
        assert mc.get_num_threads() == 1
        for bad in (0, -2, 1.5, "2", True):
            with pytest.raises(ValueError, match="num_threads"):
                mc.set_num_threads(bad)
    finally:
        mc.set_num_threads(before)


def test_cached_outputs_are_reused_and_correct():
    shape = (4, 64, 64, 64)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    _core.release_cache()
    first = mc.functional.relu(x)
    np.testing.assert_array_equal(first, np.maximum(x, 0))
    assert first.flags.c_contiguous and first.flags.writeable and first.flags.owndata is False
    del first
    held = _core.cache_info()["cached_bytes"]
    assert held >= x.nbytes  # the freed block is kept, its pages already mapped
    second = mc.functional.relu(x)  # ... and comes back: no fresh pages to fault in
    assert _core.cache_info()["cached_bytes"] < held
    np.testing.assert_array_equal(second, np.maximum(x, 0))


def test_cache_limit_and_release():
    before = _core.cache_info()["limit_bytes"]
    try:
        a = _core.empty([1 << 20], np.dtype(np.float32))
        a[:] = 1.0
        del a
        assert _core.cache_info()["cached_bytes"] >= 4 << 20
        _core.release_cache()
        assert _core.cache_info()["cached_bytes"] == 0
        _core.set_cache_limit(0)
        b = _core.empty([1 << 20], np.dtype(np.float32))
        del b
        assert _core.cache_info()["cached_bytes"] == 0
        with pytest.raises(ValueError, match="cache limit"):
            _core.set_cache_limit(-1)
    finally:
        _core.set_cache_limit(before)


def test_small_outputs_use_numpy_memory():
    a = _core.empty([3, 5], np.dtype(np.float64))
    assert a.shape == (3, 5) and a.dtype == np.float64 and a.flags.owndata
