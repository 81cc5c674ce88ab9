"""The GPU dispatch on machines without CuPy or without a GPU: nothing imports CuPy by accident, a
CUDA array without CuPy gets an error that says what to install, and the sources are found.
(tests/test_gpu.py runs the kernels themselves, on a GPU or on the CPU emulation.)"""
import subprocess
import sys

import numpy as np
import pytest

import medconv
import medconv._cuda as _cuda
import medconv.functional as F


def test_importing_medconv_does_not_import_cupy():
    code = ("import sys, numpy as np, medconv, medconv.functional as F; F.relu(np.ones(3, np.float32)); "
            "medconv._backend.as_array(np.ones(2)); print('cupy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


class FakeCudaTensor:
    """An object that says, through DLPack, that it lives in CUDA memory (as a torch CUDA tensor does)."""

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    def __dlpack__(self, **kwargs):
        raise BufferError("no memory behind this test object")


def test_cuda_array_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    with pytest.raises(_cuda.GPUUnavailableError, match=r"pip install 'medconv\[cuda\]'"):
        F.relu(FakeCudaTensor())
    assert _cuda.gpu_info() is None or isinstance(_cuda.gpu_info(), dict)


def test_backend_info_gpu_entry():
    info = medconv.backend_info()["gpu"]
    assert info is None or (info["backend"] == "cupy" and isinstance(info["devices"], list))


def test_sources_are_found_and_inline_the_header():
    d = _cuda.cuda_dir()
    assert (d / "common.cuh").is_file()
    for family in _cuda.KERNELS:
        text = _cuda.source(family)
        assert '#include "common.cuh"' not in text and "MC_EXPORT" in text
    with pytest.raises(ValueError, match="unknown kernel family"):
        _cuda.source("nope")


def test_int32_arguments_refuse_to_wrap():
    assert _cuda.i32(2**31 - 1) == 2**31 - 1
    with pytest.raises(ValueError, match="does not fit the GPU kernels' 32-bit argument"):
        _cuda.i32(2**31, "stride")
    assert _cuda.i64(2**40) == np.int64(2**40)
