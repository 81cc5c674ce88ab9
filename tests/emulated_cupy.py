"""A stand-in for the part of CuPy that medconv uses, running medconv's CUDA kernels on the CPU.

`RawModule(code=...)` compiles the kernel source as C++ with tests/cuda_emu.h force-included (g++,
one OS thread per CUDA thread, blocks in turn, __syncthreads a barrier) and launches kernels
through ctypes. Arrays are numpy arrays in a wrapper that, like CuPy's, refuses implicit
conversion to numpy, so a CPU/GPU mix-up in medconv fails here as it would on a GPU. Kernel
arguments must be arrays or numpy scalars (as CuPy needs them to pick C types), and arrays passed
to a kernel must be C-contiguous (medconv's kernels assume it).

For tests only: `install()` returns the module to put in sys.modules["cupy"].
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EMU_HEADER = HERE / "cuda_emu.h"
SM_COUNT = 4


def compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


# ------------------------------------------------------------------ arrays


class _Flags:
    def __init__(self, a):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = bool(a.flags.owndata)


def _unwrap(v, what="operand"):
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, np.ndarray):
        raise TypeError(f"Unsupported type <class 'numpy.ndarray'> as {what} (a CPU array mixed with a GPU one)")
    return v


def _wrap(r):
    if isinstance(r, np.ndarray):
        return ndarray(r)
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap(x) for x in r)
    return ndarray(np.asarray(r))  # CuPy returns 0-d arrays, not scalars


def _unwrap_all(v):
    """Arguments of a function: emulated arrays to their numpy arrays (in lists and tuples too);
    a numpy array is refused, as CuPy refuses one."""
    if isinstance(v, (tuple, list)):
        return type(v)(_unwrap_all(x) for x in v)
    return _unwrap(v, "argument")


class _MemoryPointer:
    """What `ndarray.data` is: the memory an array views (here, the numpy array holding it)."""

    def __init__(self, a):
        self._a = a


class ndarray:  # noqa: N801 -- CuPy's name
    __array_ufunc__ = None  # numpy defers (and refuses) mixed operations, as with CuPy

    def __init__(self, a, dtype=None, memptr=None, strides=None, order="C"):
        if isinstance(a, np.ndarray) and dtype is None and memptr is None:
            self._a = a
        elif memptr is None:  # CuPy's constructor: ndarray(shape, dtype)
            self._a = np.full(a, np.nan, dtype) if np.dtype(dtype).kind == "f" else np.empty(a, dtype)
        else:  # a view of memptr's memory, as cupy.ndarray(shape, dtype, memptr=x.data, strides=...)
            self._a = np.ndarray(a, dtype, buffer=memptr._a, strides=strides)

    data = property(lambda self: _MemoryPointer(self._a))
    device = property(lambda self: _Device(0))

    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: ndarray(self._a.T))

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __repr__(self):
        return f"emulated_cupy.ndarray({self._a!r})"

    def __len__(self):
        return len(self._a)

    def get(self):
        return self._a.copy()

    def reshape(self, *shape):
        return ndarray(self._a.reshape(*shape))

    def astype(self, dtype, copy=True):
        return ndarray(self._a.astype(dtype, copy=copy))

    def copy(self):
        return ndarray(self._a.copy())

    def fill(self, value):
        self._a.fill(value)

    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __neg__(self):
        return ndarray(-self._a)

    def __abs__(self):
        return ndarray(np.abs(self._a))

    def __invert__(self):
        return ndarray(~self._a)

    def __bool__(self):
        return bool(self._a)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def view(self, dtype=None):
        return ndarray(self._a.view() if dtype is None else self._a.view(dtype))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_all(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap_all(key)] = _unwrap(value)


def _binary(op, reflected=False, inplace=False):
    def method(self, other):
        o = _unwrap(other)
        if inplace:
            op(self._a, o, out=self._a)
            return self
        return _wrap(op(o, self._a) if reflected else op(self._a, o))
    return method


def _method(name):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._a, name)(*_unwrap_all(args), **kwargs))
    method.__name__ = name
    return method


for _name in ("sum", "mean", "min", "max", "any", "all", "argmax", "ravel", "transpose", "squeeze"):
    setattr(ndarray, _name, _method(_name))

for _name, _op in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal)):
    setattr(ndarray, f"__{_name}__", _binary(_op))
ndarray.__hash__ = None

for _name, _op in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                   ("matmul", np.matmul), ("pow", np.power), ("and", np.bitwise_and), ("or", np.bitwise_or)):
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if _name != "matmul":
        setattr(ndarray, f"__i{_name}__", _binary(_op, inplace=True))


def empty(shape, dtype=np.float64):
    return ndarray(np.full(shape, np.nan, dtype=dtype) if np.dtype(dtype).kind == "f" else np.empty(shape, dtype))


def zeros(shape, dtype=np.float64):
    return ndarray(np.zeros(shape, dtype=dtype))


def asarray(a, dtype=None):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return ndarray(np.array(a, dtype=dtype, copy=True))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def ascontiguousarray(a, dtype=None):
    return ndarray(np.ascontiguousarray(_unwrap(a), dtype=dtype))


def sqrt(a):
    return ndarray(np.sqrt(_unwrap(a)))


def matmul(a, b, out=None):
    if out is None:
        return ndarray(np.matmul(_unwrap(a), _unwrap(b)))
    np.matmul(_unwrap(a), _unwrap(b), out=out._a)
    return out


def array(a, dtype=None, copy=True, order="C"):
    return ndarray(np.array(_unwrap(a), dtype=dtype, copy=copy, order=order)) if isinstance(a, ndarray) \
        else ndarray(np.array(a, dtype=dtype, copy=True, order=order))


def _function(name):
    fn = getattr(np, name)

    def function(*args, **kwargs):
        return _wrap(fn(*_unwrap_all(args), **{k: _unwrap_all(v) for k, v in kwargs.items()}))
    function.__name__ = name
    return function


#: numpy functions the emulated module offers, on emulated arrays only (as CuPy's)
FUNCTIONS = ("zeros_like", "ones", "ones_like", "full", "arange", "exp", "log", "log1p", "abs", "maximum",
             "minimum", "where", "expand_dims", "broadcast_to", "concatenate", "split", "stack", "argmax", "unique",
             "isfinite", "multiply", "allclose", "array_equal")


def from_dlpack(obj):
    raise TypeError("the emulated CuPy reads no DLPack objects")


# ------------------------------------------------------------------ kernels

_CACHE = Path(tempfile.gettempdir()) / f"medconv-cuda-emu-{os.getuid() if hasattr(os, 'getuid') else 0}"
_compile_lock = threading.Lock()

_CTYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
           np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


def _build(code: str, options) -> Path:
    header = EMU_HEADER.read_text()
    key = hashlib.sha256("\0".join([code, header, *options]).encode()).hexdigest()[:24]
    so = _CACHE / f"{key}.so"
    with _compile_lock:
        if so.exists():
            return so
        _CACHE.mkdir(parents=True, exist_ok=True)
        src = _CACHE / f"{key}.cpp"
        src.write_text(code)
        tmp = _CACHE / f"{key}.{os.getpid()}.so"
        cmd = [compiler(), "-std=c++17", "-O1", "-fPIC", "-shared", "-pthread", "-w", "-include", str(EMU_HEADER),
               "-x", "c++", str(src), "-o", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"emulated NVRTC: compile failed:\n{r.stderr[-4000:]}")
        os.replace(tmp, so)
    return so


class _Kernel:
    def __init__(self, lib, name):
        self._lib = lib
        self._fn = getattr(lib, name)
        self._fn.restype = None
        self.name = name

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        if min(grid) < 1 or min(block) < 1 or grid[0] > 2**31 - 1 or max(grid[1:]) > 65535 \
                or block[0] * block[1] * block[2] > 1024:
            raise ValueError(f"{self.name}: invalid launch configuration grid={grid} block={block}")
        converted = []
        for i, a in enumerate(args):
            if isinstance(a, ndarray):
                if not a._a.flags.c_contiguous:
                    raise ValueError(f"{self.name}: argument {i} is not C-contiguous")
                converted.append(ctypes.c_void_p(a._a.ctypes.data))
            elif isinstance(a, np.generic) and a.dtype in _CTYPES:
                converted.append(_CTYPES[a.dtype](a.item()))
            else:
                raise TypeError(f"{self.name}: argument {i} of type {type(a).__name__}; pass arrays or numpy scalars")
        self._fn.argtypes = [type(c) for c in converted]
        self._lib.emu_configure(*grid, *block)
        self._fn(*converted)


class RawModule:
    def __init__(self, code=None, options=(), **kwargs):
        self._lib = ctypes.CDLL(str(_build(code, tuple(options))))

    def get_function(self, name):
        return _Kernel(self._lib, name)


class _Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise _CUDARuntimeError(f"cudaErrorInvalidDevice: the emulation has device 0 only, got {self.id}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _CUDARuntimeError(RuntimeError):
    pass


_runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {"name": b"medconv CPU emulator", "multiProcessorCount": SM_COUNT,
                                   "totalGlobalMem": 0, "major": 8, "minor": 0},
    CUDARuntimeError=_CUDARuntimeError,
)


def install():
    """A module object to put in sys.modules["cupy"]."""
    mod = types.ModuleType("cupy")
    mod.__version__ = "emulated"
    for name in ("ndarray", "empty", "zeros", "asarray", "asnumpy", "ascontiguousarray", "sqrt", "matmul",
                 "from_dlpack", "RawModule", "array"):
        setattr(mod, name, globals()[name])
    for name in FUNCTIONS:
        setattr(mod, name, _function(name))
    for name in ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool_"):
        setattr(mod, name, getattr(np, name))
    mod.cuda = types.SimpleNamespace(Device=_Device, runtime=_runtime)
    return mod
