"""medconv: fast, exact CNN building blocks for medical images (C++/SIMD kernels, PyTorch's API)."""
from __future__ import annotations

import os as _os
import warnings as _warnings

from . import _core, _cuda
from . import functional
from . import dicom, filters, nn, optim

__version__ = "0.1.0"

if _os.environ.get("MEDCONV_ISA"):
    try:
        _core.select_isa(_os.environ["MEDCONV_ISA"])
    except ValueError as _exc:
        _warnings.warn(f"MEDCONV_ISA={_os.environ['MEDCONV_ISA']!r} ignored: {_exc}", RuntimeWarning, stacklevel=2)
        _core.select_isa("auto")


def set_num_threads(n: int) -> None:
    """Threads used by every kernel (default: MEDCONV_NUM_THREADS, else all cores)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be a positive int, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads used by every kernel."""
    return _core.get_num_threads()


def backend_info() -> dict:
    """What runs: the ISA of the active kernels, what this CPU and build offer, threads, GPU."""
    info = dict(_core.backend_info())
    info["gpu"] = _cuda.gpu_info()  # None without CuPy or without a CUDA device
    return info


__all__ = ["functional", "nn", "optim", "dicom", "filters", "set_num_threads", "get_num_threads", "backend_info", "__version__"]
