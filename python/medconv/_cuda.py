"""medconv's CUDA kernels through CuPy.

The kernels are the .cu files installed with the package (medconv/cuda/, from the repository's
cuda/): each family's source, with cuda/common.cuh inlined, is compiled by NVRTC into one
cupy.RawModule per device the first time a kernel of that family runs there, and cached. Kernels
are picked by name (`<kernel>_f32` / `<kernel>_f64`); KERNELS lists every name each module must
export (tests/test_cuda_compile.py checks them against nvcc's output).

Nothing here imports CuPy until a GPU array is actually in hand (or `gpu_info()` is asked).
"""
from __future__ import annotations

import importlib.util
import math
import sys
import threading
from pathlib import Path

import numpy as np

THREADS = 256  # threads per block (MC_THREADS in common.cuh)
INT32_MAX = 2**31 - 1
GRID_YZ_MAX = 65535

_TYPED = {  # kernels compiled for float32 and float64: name_f32, name_f64
    "activation": ("unary_forward", "unary_backward", "softmax_columns", "softmax_rows", "softmax_backward_columns",
                   "softmax_backward_rows", "maxout_forward", "maxout_backward"),
    "batchnorm": ("bn_reduce", "bn_finalize_var", "bn_apply", "bn_backward_finalize", "bn_backward_input"),
    "conv": ("conv_direct_forward", "conv_direct_backward_input", "conv_direct_backward_weight", "conv_reduce_splits",
             "channel_sum_partial", "channel_sum_finalize")
            + tuple(f"conv_direct_tiled_forward_oc{q}_rows{r}" for q in (1, 4) for r in (1, 2, 4))
            + tuple(f"conv_gemm_{op}_{tile}" for op in ("forward", "backward_input", "backward_weight")
                    for tile in ("bn16", "bn32", "bn64"))
            + tuple(f"conv_gemm_wide_forward_m{bm}n{bn}" for bm in (64, 128) for bn in (32, 64, 128)),
    "dicom": (),
    "interpolate": ("interpolate_forward", "interpolate_backward"),
    "pad": ("pad_forward", "pad_backward"),
    "pool": ("max_pool_forward", "max_pool_backward", "max_pool_backward_scatter", "avg_pool_forward",
             "avg_pool_backward", "adaptive_avg_pool_forward", "adaptive_avg_pool_backward"),
}
_UNTYPED = {
    "batchnorm": ("bn_finalize_mean",),
    "dicom": tuple(f"dicom_rescale_{t}" for t in ("i8", "u8", "i16", "u16", "i32", "u32", "f32")),
    "pool": ("max_pool_check_indices",),
}
#: family (the .cu file's stem) -> every extern "C" kernel name its module exports
KERNELS = {
    family: tuple(f"{base}_{sfx}" for base in bases for sfx in ("f32", "f64")) + _UNTYPED.get(family, ())
    for family, bases in _TYPED.items()
}
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
#: the numpy dtypes of dicom_rescale_<suffix>'s input
DICOM_SUFFIX = {np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.int16): "i16",
                np.dtype(np.uint16): "u16", np.dtype(np.int32): "i32", np.dtype(np.uint32): "u32",
                np.dtype(np.float32): "f32"}
NVRTC_OPTIONS = ("--std=c++17",)

NULL = np.uint64(0)  # a null pointer argument


class GPUUnavailableError(RuntimeError):
    """A GPU array was passed but this process cannot run medconv's CUDA kernels (and why)."""


def cuda_dir() -> Path:
    """The folder that holds the .cu sources: the installed package's medconv/cuda/, else (an
    editable install) the repository's cuda/, else the one installed beside medconv._core."""
    here = Path(__file__).resolve().parent
    candidates = [here / "cuda", here.parents[1] / "cuda"]
    core = sys.modules.get("medconv._core")
    if core is not None and getattr(core, "__file__", None):
        candidates.append(Path(core.__file__).resolve().parent / "cuda")
    for c in candidates:
        if (c / "conv.cu").is_file():
            return c
    raise GPUUnavailableError(
        "medconv's CUDA sources (conv.cu, ...) are not installed: looked in "
        + ", ".join(str(c) for c in candidates) + "; reinstall medconv")


def source(family: str) -> str:
    """The family's .cu text with common.cuh inlined (NVRTC then needs no include path, and CuPy's
    kernel cache, keyed by the source text, sees a change to the header)."""
    d = cuda_dir()
    if family not in KERNELS:
        raise ValueError(f"unknown kernel family {family!r}; one of {sorted(KERNELS)}")
    common = "\n".join(line for line in (d / "common.cuh").read_text().splitlines()
                       if line.strip() != "#pragma once")
    return (d / f"{family}.cu").read_text().replace('#include "common.cuh"', common, 1)


# ------------------------------------------------------------------ CuPy and the device


def cupy():
    """The cupy module, imported on demand, or GPUUnavailableError saying what to install."""
    mod = sys.modules.get("cupy")
    if mod is not None:
        return mod
    try:
        import cupy as mod  # noqa: PLC0415 -- only ever reached with a GPU array in hand
    except ImportError as exc:
        raise GPUUnavailableError(
            "medconv runs GPU arrays with CuPy, which is not installed: pip install 'medconv[cuda]' "
            f"(or the cupy-cuda12x / cupy-cuda13x wheel that matches your CUDA driver); {exc}") from None
    return mod


def is_cupy(x) -> bool:
    """True for a CuPy array; never imports CuPy."""
    mod = sys.modules.get("cupy")
    return mod is not None and isinstance(x, mod.ndarray)


def device_id() -> int:
    """The current CUDA device, or GPUUnavailableError when there is none."""
    cp = cupy()
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise GPUUnavailableError("CuPy sees no CUDA device: medconv's GPU kernels cannot run here")
        return int(cp.cuda.Device().id)
    except GPUUnavailableError:
        raise
    except Exception as exc:  # CUDARuntimeError (no driver, no device) and the like
        raise GPUUnavailableError(f"no usable CUDA device for medconv's GPU kernels: {exc}") from None


_lock = threading.Lock()
_modules: dict = {}     # (device id, family) -> cupy.RawModule
_functions: dict = {}   # (device id, family, name) -> cupy.RawKernel
_props: dict = {}       # device id -> properties


def _properties(dev: int) -> dict:
    p = _props.get(dev)
    if p is None:
        p = dict(cupy().cuda.runtime.getDeviceProperties(dev))
        _props[dev] = p
    return p


def sm_count() -> int:
    """Streaming multiprocessors of the current device (sizes grids and split-K work)."""
    return max(1, int(_properties(device_id()).get("multiProcessorCount", 1)))


def module(family: str):
    """The family's cupy.RawModule on the current device: compiled once, then cached."""
    dev = device_id()
    key = (dev, family)
    mod = _modules.get(key)
    if mod is None:
        with _lock:
            mod = _modules.get(key)
            if mod is None:
                mod = cupy().RawModule(code=source(family), options=NVRTC_OPTIONS)
                _modules[key] = mod
    return mod


def function(family: str, name: str):
    """The kernel `name` (its full extern "C" name) of `family` on the current device."""
    dev = device_id()
    key = (dev, family, name)
    fn = _functions.get(key)
    if fn is None:
        if name not in KERNELS.get(family, ()):
            raise ValueError(f"{family}.cu exports no kernel {name!r}")
        fn = module(family).get_function(name)
        _functions[key] = fn
    return fn


def typed(family: str, base: str, dtype):
    """The float32 / float64 variant of a kernel."""
    return function(family, f"{base}_{SUFFIX[np.dtype(dtype)]}")


# ------------------------------------------------------------------ arguments and launches


def i64(value) -> np.int64:
    return np.int64(int(value))


def i32(value, name: str = "argument") -> np.int32:
    """A kernel's 32-bit int argument; ValueError rather than a silent wrap-around."""
    v = int(value)
    if not -(2**31) <= v <= INT32_MAX:
        raise ValueError(f"{name}={v} does not fit the GPU kernels' 32-bit argument")
    return np.int32(v)


def scalar(value, dtype):
    """A T argument (float32 or float64) of a kernel."""
    return np.dtype(dtype).type(value)


def launch_1d(fn, n: int, args: tuple) -> None:
    """Runs a grid-stride kernel over n work items: 256-thread blocks, at most 32 per SM (the
    kernels loop with 64-bit indices, so any n is covered)."""
    if n <= 0:
        return
    blocks = max(1, min(math.ceil(n / THREADS), 32 * sm_count(), INT32_MAX))
    fn((blocks,), (THREADS,), args)


def launch_blocks(fn, blocks: int, args: tuple) -> None:
    """Runs a kernel whose blocks loop over `blocks` work units (one unit per block)."""
    if blocks <= 0:
        return
    fn((max(1, min(blocks, 32 * sm_count())),), (THREADS,), args)


def launch_grid(fn, grid: tuple, args: tuple, what: str = "kernel") -> None:
    """Runs a kernel on an explicit 3-d grid of 256-thread blocks, refusing a grid CUDA cannot hold."""
    gx, gy, gz = (tuple(int(g) for g in grid) + (1, 1))[:3]
    if min(gx, gy, gz) <= 0:
        return
    if gx > INT32_MAX or gy > GRID_YZ_MAX or gz > GRID_YZ_MAX:
        raise ValueError(f"{what}: grid ({gx}, {gy}, {gz}) exceeds CUDA's limits")
    fn((gx, gy, gz), (THREADS,), args)


def gpu_info():
    """The CUDA devices medconv can run on (through CuPy), or None: without CuPy installed, without
    a driver or without a device. Imports CuPy only if it is installed."""
    if "cupy" not in sys.modules and importlib.util.find_spec("cupy") is None:
        return None
    try:
        cp = cupy()
        count = cp.cuda.runtime.getDeviceCount()
        devices = []
        for i in range(count):
            p = _properties(i)
            name = p.get("name", b"")
            devices.append({
                "id": i,
                "name": name.decode(errors="replace") if isinstance(name, bytes) else str(name),
                "compute_capability": f"{p.get('major', '?')}.{p.get('minor', '?')}",
                "multiprocessors": int(p.get("multiProcessorCount", 0)),
                "memory_gib": round(int(p.get("totalGlobalMem", 0)) / 2**30, 1),
            })
        return {"backend": "cupy", "cupy": getattr(cp, "__version__", "?"), "devices": devices} if devices else None
    except Exception:  # no driver / no device / broken install: the GPU path is not available
        return None
