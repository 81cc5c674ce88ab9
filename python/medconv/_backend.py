"""Array plumbing: what kind of array came in, a C-contiguous float view for the kernels, and
results handed back as the caller's kind (numpy in, numpy out; torch CPU in, torch out)."""
from __future__ import annotations

import sys

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Source:
    """Where an argument came from, so a result can be returned as the same kind."""

    __slots__ = ("kind", "obj")

    def __init__(self, kind: str, obj=None):
        self.kind = kind  # "numpy" | "torch" | "dlpack" | "cupy" (obj: the CUDA tensor read through DLPack, if any)
        self.obj = obj


def _is_cupy(x) -> bool:
    cupy = sys.modules.get("cupy")  # never import CuPy by accident
    return cupy is not None and isinstance(x, cupy.ndarray)


def _is_torch(x) -> bool:
    return "torch" in sys.modules and isinstance(x, sys.modules["torch"].Tensor)


def _on_cuda(x) -> bool:
    """A DLPack object in CUDA (or CUDA managed) memory, e.g. a torch tensor on "cuda"."""
    try:
        return int(x.__dlpack_device__()[0]) in (2, 13)  # kDLCUDA, kDLCUDAManaged
    except Exception:
        return False


def array_namespace(*arrays):
    """The array module of the arguments: cupy when any of them is a CuPy array (CuPy is then
    already imported), else numpy. Never imports CuPy."""
    for a in arrays:
        if _is_cupy(a):
            return sys.modules["cupy"]
    return np


def on_gpu(*objs) -> bool:
    """True when any argument is a GPU array: a CuPy array, or an object with __dlpack__ in CUDA
    memory (a torch CUDA tensor). The ops send such calls to medconv._gpu."""
    for o in objs:
        if o is None or isinstance(o, np.ndarray):
            continue
        if _is_cupy(o) or (hasattr(o, "__dlpack__") and not isinstance(o, type) and _on_cuda(o)):
            return True
    return False


def to_namespace(arr, xp):
    """arr on xp's device (numpy: the host; cupy: the current GPU): itself when it is there already,
    else a copy (cupy.asarray / cupy.asnumpy)."""
    if xp is np:
        return sys.modules["cupy"].asnumpy(arr) if _is_cupy(arr) else arr
    return arr if _is_cupy(arr) else xp.asarray(arr)


def _where(arr) -> str:
    return "on the GPU (CuPy)" if _is_cupy(arr) else "on the CPU"


def as_array(x, name: str = "input", *, allow_int: bool = False) -> tuple[np.ndarray, Source]:
    """Reads `x` without copying: a numpy array (DLPack for CPU torch/JAX tensors), or a CuPy array for
    a CuPy array or a CUDA tensor (Source kind "cupy"; CuPy is imported only for a CUDA tensor)."""
    if isinstance(x, np.ndarray):
        arr, src = x, Source("numpy")
    elif _is_cupy(x):
        arr, src = x, Source("cupy")
    elif hasattr(x, "__dlpack__") and not isinstance(x, type) and _on_cuda(x):
        from . import _cuda

        if _is_torch(x) and x.requires_grad:
            x = x.detach()
        cp = _cuda.cupy()  # GPUUnavailableError (what to install) without CuPy
        try:
            arr = cp.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError) as exc:
            raise TypeError(f"{name} could not be read through __dlpack__ as a CuPy (GPU) array: {exc}") from None
        src = Source("cupy", x)
    elif hasattr(x, "__dlpack__") and not isinstance(x, type):
        if _is_torch(x):
            if x.device.type != "cpu":
                raise TypeError(f"{name} is a torch tensor on {x.device}; medconv runs CPU and CUDA tensors, "
                                "move it to one of those")
            if x.requires_grad:
                x = x.detach()
        try:
            arr = np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError) as exc:
            raise TypeError(f"{name} could not be read through __dlpack__ as a CPU array: {exc}") from None
        src = Source("torch" if _is_torch(x) else "dlpack", x)
    else:
        raise TypeError(
            f"{name} must be a numpy array, a CuPy array or an object with __dlpack__ "
            f"(torch/JAX tensor), got {type(x).__name__}"
        )
    if arr.dtype not in FLOAT_DTYPES and not (allow_int and arr.dtype.kind in "iu"):
        raise TypeError(
            f"{name} has dtype {arr.dtype}; medconv computes in float32 or float64: "
            f"convert it first, e.g. {name}.astype(numpy.float32)"
        )
    return arr, src


def contiguous(arr: np.ndarray) -> np.ndarray:
    """The kernels read C-contiguous memory; a strided view is copied here, visibly, once."""
    if arr.flags.c_contiguous:
        return arr
    return sys.modules["cupy"].ascontiguousarray(arr) if _is_cupy(arr) else np.ascontiguousarray(arr)


def same_dtype(arr: np.ndarray, ref: np.ndarray, name: str) -> None:
    """TypeError unless arr has ref's dtype and sits on ref's device (CPU or GPU)."""
    if _is_cupy(arr) != _is_cupy(ref):
        raise TypeError(f"{name} is {_where(arr)} but input is {_where(ref)}; pass all arrays on one device "
                        "(cupy.asarray / cupy.asnumpy move them)")
    if arr.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but input has dtype {ref.dtype}; convert one to match")


def prepare_out(out, shape: tuple, dtype: np.dtype, name: str = "out") -> np.ndarray:
    """A fresh output, or the caller's `out=` after checking it can take the result in place."""
    if out is None:
        return _core.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        arr, s = as_array(out, name)
        if s.kind == "cupy":
            raise TypeError(f"{name} is on the GPU (CuPy) but input is on the CPU; pass all arrays on one device")
        if not arr.flags.writeable:
            raise ValueError(f"{name} must be writeable")
        out = arr
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    return out


def wrap(result: np.ndarray, src: Source, out=None):
    """Returns the result as the kind the caller passed in (the caller's own `out` if given)."""
    if out is not None:
        return out
    if src.kind == "torch":
        return sys.modules["torch"].from_numpy(result)
    return result
