"""Module, Parameter and the containers: Sequential, ModuleList, Residual (a skip connection that
adds) and SkipConcat (a U-Net skip connection that concatenates).

A module computes `forward(x)` and remembers what its gradient needs; `backward(grad_output)`
returns the gradient of its input and adds the gradient of each parameter to `param.grad`.
Each module instance keeps the record of its last forward only: call a module once per
forward pass (use separate instances for separate uses), then backward once.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import sys
import threading
from collections import OrderedDict, namedtuple

import numpy as np

from .._backend import _is_cupy, array_namespace, as_array, on_gpu, to_namespace
from ..functional._args import ValidatedCalls

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

# ------------------------------------------------------------------------ gradient recording

class _GradMode(threading.local):
    enabled = True  # per thread, as torch's grad mode: one thread's no_grad leaves the others alone


_grad_mode = _GradMode()


class no_grad:
    """Context manager (or decorator): modules skip recording what their gradients need, as in
    predict(). Inside it, backward() is unavailable. It applies to the calling thread only."""

    def __enter__(self):
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


# ------------------------------------------------------------------------ Parameter


class _ParameterType(type):
    """Parameter's metaclass: a parameter on the GPU (a CuPy array, see _cuda_parameter) is a
    Parameter too for isinstance()."""

    def __instancecheck__(cls, obj):
        return type.__instancecheck__(cls, obj) or (
            cls is Parameter and getattr(type(obj), "_medconv_parameter", False))


class Parameter(np.ndarray, metaclass=_ParameterType):
    """A numpy array that a Module trains; `.grad` holds its accumulated gradient (None until the
    first backward, or after zero_grad()). Arithmetic on a Parameter gives plain arrays; in-place
    updates (`p -= lr * p.grad`) keep it a Parameter. Parameter(cupy_array) (and Module.to("cuda"))
    makes a parameter on the GPU: a CuPy array with the same .grad and .requires_grad."""

    def __new__(cls, data, requires_grad=True):
        if _is_cupy(data):
            return _cuda_parameter(data, requires_grad)
        arr = np.array(data, copy=True, order="C")
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"a Parameter must be float32 or float64, got {arr.dtype}")
        obj = arr.view(cls)
        obj.grad = None
        obj.requires_grad = bool(requires_grad)
        return obj

    def __array_finalize__(self, obj):
        self.grad = None
        self.requires_grad = getattr(obj, "requires_grad", True)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        inputs = tuple(i.view(np.ndarray) if isinstance(i, Parameter) else i for i in inputs)
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Parameter) else o for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __reduce__(self):
        raise TypeError("Parameters are not pickled; save models with medconv.nn.save")

    @property
    def data(self):  # torch's p.data: the values, as a plain array sharing memory
        return self.view(np.ndarray)

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)

    def __repr__(self):
        return "Parameter containing:\n" + repr(self.view(np.ndarray))


ValidatedCalls.array_types.add(Parameter)  # a layer's repeated calls skip the functional ops' checks

_CUDA_PARAMETER_CLASSES: dict = {}  # cupy.ndarray -> its Parameter subclass


def _cuda_parameter_class(base):
    cls = _CUDA_PARAMETER_CLASSES.get(base)
    if cls is None:
        class CudaParameter(base):
            """A Parameter on the GPU: a CuPy array with .grad and .requires_grad."""

            _medconv_parameter = True

            def __array_finalize__(self, obj):
                self.grad = None
                self.requires_grad = getattr(obj, "requires_grad", True)

            def __repr__(self):
                return "Parameter containing:\n" + base.__repr__(self)

        cls = _CUDA_PARAMETER_CLASSES[base] = CudaParameter
    return cls


def _cuda_parameter(data, requires_grad):
    """A copy of the CuPy array `data` as a GPU Parameter (built with cupy.ndarray's constructor on
    the copy's memory, which every CuPy that subclasses supports)."""
    cp = sys.modules["cupy"]
    arr = cp.array(data, copy=True, order="C")
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"a Parameter must be float32 or float64, got {arr.dtype}")
    obj = _cuda_parameter_class(cp.ndarray)(arr.shape, arr.dtype, memptr=arr.data, strides=arr.strides)
    obj.grad = None
    obj.requires_grad = bool(requires_grad)
    return obj


def _to_numpy(value, name):
    """A numpy array from a numpy array, a torch tensor (detached) or anything array-like; a CuPy
    array (a GPU Parameter too) is returned as it is."""
    if isinstance(value, np.ndarray):
        return value.view(np.ndarray) if isinstance(value, Parameter) else value
    if _is_cupy(value):
        return value
    if on_gpu(value):  # a torch CUDA tensor: read through DLPack as a CuPy array, no copy
        return as_array(value, name, allow_int=True)[0]
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if hasattr(value, "__dlpack__"):
        return as_array(value, name, allow_int=True)[0]
    return np.asarray(value)


# ------------------------------------------------------------------------ Module


def _addindent(s, n):
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


def _recording_init(cls, init):
    """Wraps cls.__init__ to keep the arguments of the most derived constructor in _init_args."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self) is cls:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self", None)
            object.__setattr__(self, "_init_args", arguments)

    return wrapper


class Module:
    """Base class of every layer and container: parameters, buffers, children, state dicts,
    train/eval, forward/backward, and fit/predict (see medconv.nn.training)."""

    _accepts_input_grad = False  # backward(grad_output, input_grad=False) may skip grad_input

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # record the constructor's arguments, for save/load
            cls.__init__ = _recording_init(cls, cls.__dict__["__init__"])

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_ctx", None)

    # -- attributes
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"call Module.__init__() before assigning {name!r} in {type(self).__name__}.__init__")
        params, bufs, mods = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            bufs.pop(name, None)
            mods.pop(name, None)
            d.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            d.pop(name, None)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} (use a Parameter or None)")
            params[name] = None
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r} (use a Module or None)")
            mods[name] = None
        elif name in bufs:
            if value is not None and not _is_array(value):
                raise TypeError(f"buffer {name!r} must be a numpy (or CuPy) array or None, got {type(value).__name__}")
            bufs[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _get(self, name):
        """self.<name> for a parameter or buffer, straight from its table: forward() reads its own
        this way, 0.15 us where the attribute takes 0.45 (a failed instance lookup before __getattr__)."""
        d = self.__dict__
        params, bufs = d["_parameters"], d["_buffers"]
        if name in params:
            return params[name]
        if name in bufs:
            return bufs[name]
        return getattr(self, name)

    def __delattr__(self, name):
        for key in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[key]:
                del self.__dict__[key][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} (use a Parameter or None)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not _is_array(tensor):
            raise TypeError(f"buffer {name!r} must be a numpy (or CuPy) array or None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        self._modules[name] = module

    register_module = add_module

    # -- traversal
    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield mp + ("." if mp else "") + name, p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield mp + ("." if mp else "") + name, b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- state
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """name -> array, with torch's key names (`0.weight`, `bn.running_mean`, ...); numpy copies
        (a model on the GPU too, so that saving it writes CPU arrays) unless keep_vars (then the
        Parameters and buffers themselves)."""
        out = OrderedDict() if destination is None else destination
        for mp, m in self.named_modules(prefix=prefix.rstrip(".")):
            pre = mp + ("." if mp else "")
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else _host_copy(p)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[pre + name] = b if keep_vars else _host_copy(b)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies values (numpy or CuPy arrays, torch tensors) into the parameters and buffers in place,
        cast to their dtype and moved to their device; a torch state dict loads as is. strict: the keys
        must match exactly."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match {type(self).__name__}: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = _to_numpy(state_dict[key], key)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"size mismatch for {key}: the checkpoint has shape {tuple(value.shape)}, "
                                 f"the model has {tuple(target.shape)}")
            if value.dtype.kind not in "fiub":
                raise ValueError(f"{key} has dtype {value.dtype}; expected numbers")
            target[...] = to_namespace(value.astype(target.dtype, copy=False), array_namespace(target))
        return _IncompatibleKeys(missing, unexpected)

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def to(self, *args, **kwargs):
        """Moves and/or casts every parameter and buffer, as torch's Module.to: to(dtype),
        to(device), to(device, dtype), to(device=..., dtype=...); returns self.

        device: "cpu", "cuda" or "cuda:N" (or a torch.device). "cuda" puts the parameters and buffers
        on the GPU as CuPy arrays (pip install 'medconv[cuda]'); the model then takes CuPy arrays (or
        torch CUDA tensors) and fit/predict run on the GPU. dtype: float32 or float64 (a numpy dtype,
        its name or a torch dtype), for the floating parameters and buffers. A parameter that changes
        is replaced by a new Parameter (its .grad moved along): create the optimizer after to()."""
        device, dtype = _to_arguments(args, kwargs)
        dt = None if dtype is None else _as_float_dtype(dtype)
        xp, index = _target(device)
        done = {}  # id(old parameter) -> its replacement: a parameter shared by two modules stays shared
        for m in self.modules():
            for name, p in list(m._parameters.items()):
                if p is None:
                    continue
                if id(p) not in done:
                    data = _moved(p, xp, index, dt)
                    new = p
                    if data is not p:
                        new = Parameter(data, requires_grad=p.requires_grad)
                        if p.grad is not None:
                            new.grad = _moved(p.grad, xp, index, new.dtype)
                    done[id(p)] = (p, new)  # p kept alive: its id stays its own
                m._parameters[name] = done[id(p)][1]
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = _moved(b, xp, index, dt if b.dtype.kind == "f" else None)
        return self

    def cuda(self, device=None):
        """to("cuda") (or to("cuda:N") for device=N)."""
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def cpu(self):
        """to("cpu")."""
        return self.to("cpu")

    @property
    def device(self):
        """Where the parameters and buffers live: "cpu", or "cuda:N" after to("cuda")."""
        for a in itertools.chain(self.parameters(), self.buffers()):
            return f"cuda:{int(a.device.id)}" if _is_cupy(a) else "cpu"
        return "cpu"

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    @property
    def dtype(self):
        """The dtype of the first parameter (float32 when there is none)."""
        for p in self.parameters():
            return p.dtype
        return np.dtype(np.float32)

    # -- computing
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, grad_output):
        """The gradient of this module's input given its output's; adds each parameter's gradient
        to its .grad."""
        raise NotImplementedError(f"{type(self).__name__} has no backward(); write one, or build the model from "
                                  "medconv.nn layers and containers")

    def _save(self, **ctx):
        """Records what backward() needs (nothing under no_grad)."""
        object.__setattr__(self, "_ctx", ctx if _grad_mode.enabled else None)

    def _saved(self):
        ctx = self.__dict__.get("_ctx")
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called without a forward() to differentiate "
                               "(or the forward ran under no_grad)")
        return ctx

    def _accumulate(self, param, grad):
        if param is None or grad is None or not param.requires_grad:
            return
        grad = array_namespace(param).asarray(grad, dtype=param.dtype)
        if param.grad is None:
            param.grad = grad
        else:
            param.grad = param.grad + grad

    # -- repr
    def extra_repr(self) -> str:
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({k}): " + _addindent(repr(m), 2) for k, m in self._modules.items()]
        lines = extra_lines + child_lines
        s = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                s += extra_lines[0]
            else:
                s += "\n  " + "\n  ".join(lines) + "\n"
        return s + ")"

    # -- training API (medconv.nn.training)
    def fit(self, x, y, *, epochs, batch_size, optimizer=None, loss=None, validation_data=None, shuffle=True,
            seed=None, verbose=1):
        """Trains on (x, y); returns the per-epoch history. See medconv.nn.training.fit."""
        from .training import fit

        return fit(self, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, loss=loss,
                   validation_data=validation_data, shuffle=shuffle, seed=seed, verbose=verbose)

    def predict(self, x, batch_size=256):
        """Predicted labels (argmax over classes), in batches. See medconv.nn.training.predict."""
        from .training import predict

        return predict(self, x, batch_size=batch_size)

    def predict_proba(self, x, batch_size=256):
        """Class probabilities, in batches. See medconv.nn.training.predict_proba."""
        from .training import predict_proba

        return predict_proba(self, x, batch_size=batch_size)


def _as_float_dtype(dtype):
    if hasattr(dtype, "is_floating_point") and str(dtype).startswith("torch."):
        dtype = str(dtype).split(".", 1)[1]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or _is_cupy(value)


def _host_copy(a) -> np.ndarray:
    """A numpy copy of a numpy or CuPy array (a Parameter's plain values)."""
    if _is_cupy(a):
        return sys.modules["cupy"].asnumpy(a)
    return np.array(a.view(np.ndarray) if isinstance(a, Parameter) else a)


def _module_namespace(module):
    """cupy when the module's parameters and buffers are on the GPU, numpy on the CPU, None without any."""
    for a in itertools.chain(module.parameters(), module.buffers()):
        return array_namespace(a)
    return None


def _is_device(value) -> bool:
    """A torch.device, or a string that is not a dtype name ("cpu", "cuda", "cuda:1", a typo)."""
    if type(value).__name__ == "device" and type(value).__module__.startswith("torch"):
        return True
    if isinstance(value, str):
        try:
            np.dtype(value)
        except TypeError:
            return True
    return False


def _to_arguments(args, kwargs):
    """(device, dtype) of Module.to's arguments, each None when not given."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)  # torch's; copies here are synchronous
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments (device, dtype), got {len(args)}")
    for a in args:
        if _is_device(a):
            if device is not None:
                raise TypeError(f"to() got two devices: {device!r} and {a!r}")
            device = a
        else:
            if dtype is not None:
                raise TypeError(f"to() got two dtypes: {dtype!r} and {a!r}")
            dtype = a
    if device is None and dtype is None:
        raise TypeError("to() needs a device ('cpu', 'cuda', 'cuda:N') or a dtype (float32, float64)")
    return device, dtype


def _target(device):
    """(array module, CUDA device index or None) of a device; (None, None) for no device."""
    if device is None:
        return None, None
    kind, _, index = str(device).partition(":")
    if kind == "cpu" and not index:
        return np, None
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    from .. import _cuda

    cp = _cuda.cupy()  # GPUUnavailableError, saying what to install, without CuPy
    _cuda.device_id()  # ... and without a CUDA device
    count = int(cp.cuda.runtime.getDeviceCount())
    if index and int(index) >= count:
        raise ValueError(f"device {device!r} does not exist: CuPy sees {count} CUDA device(s)")
    return cp, (int(index) if index else None)


def _moved(a, xp, index, dtype):
    """`a` on xp's device (xp None: where it is; index: that CUDA device) with `dtype` (None: its
    own); `a` itself when neither changes."""
    out = a
    if xp is np and _is_cupy(a):
        out = sys.modules["cupy"].asnumpy(a)
    elif xp is not None and xp is not np and (
            not _is_cupy(a) or (index is not None and int(a.device.id) != index)):
        with xp.cuda.Device(index) if index is not None else contextlib.nullcontext():
            out = xp.array(a) if _is_cupy(a) else xp.asarray(np.asarray(a))
    if dtype is not None and out.dtype != dtype:
        out = out.astype(dtype)
    return out


def backward_through(module, grad_output, input_grad=True):
    """module.backward(grad_output), passing input_grad=False to the layers that can skip it."""
    if not input_grad and module._accepts_input_grad:
        return module.backward(grad_output, input_grad=False)
    return module.backward(grad_output)


# ------------------------------------------------------------------------ containers


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse. Sequential(m0, m1, ...) or
    Sequential(OrderedDict(name=module, ...))."""

    _accepts_input_grad = True

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
                self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a Sequential of {n} modules")
        return list(self._modules.values())[idx % n]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def backward(self, grad_output, input_grad=True):
        mods = list(self._modules.values())
        for i in range(len(mods) - 1, -1, -1):
            grad_output = backward_through(mods[i], grad_output, input_grad or i > 0)
        return grad_output


class ModuleList(Module):
    """A list of modules (registered, so their parameters are found); it has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return list(self._modules.values())[idx]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Residual(Module):
    """y = body(x) + shortcut(x), the skip connection of a ResNet block (shortcut None: identity;
    a 1x1 conv when the shapes differ). Follow it with an activation for the usual block."""

    _accepts_input_grad = True

    def __init__(self, body, shortcut=None):
        super().__init__()
        if not isinstance(body, Module) or (shortcut is not None and not isinstance(shortcut, Module)):
            raise TypeError("Residual takes a body Module and an optional shortcut Module")
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut

    def forward(self, input):
        y = self.body(input)
        s = self.shortcut(input) if "shortcut" in self._modules else input
        if np.shape(y) != np.shape(s):
            raise ValueError(f"Residual: the body gives shape {tuple(np.shape(y))} but the shortcut gives "
                             f"{tuple(np.shape(s))}; add a shortcut module that matches them")
        return y + s

    def backward(self, grad_output, input_grad=True):
        g = backward_through(self.body, grad_output, input_grad)
        if "shortcut" in self._modules:
            gs = backward_through(self.shortcut, grad_output, input_grad)
        else:
            gs = grad_output
        if not input_grad:
            return None
        return g + gs


class SkipConcat(Module):
    """y = concatenate([x, submodule(x)], dim): the skip connection of a U-Net. Nest them, the
    encoder and decoder of each level around the next: the submodule's output must have the
    input's sizes on every dim but `dim`."""

    _accepts_input_grad = True

    def __init__(self, submodule, dim=1):
        super().__init__()
        if not isinstance(submodule, Module):
            raise TypeError("SkipConcat takes a Module")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {dim!r}")
        self.submodule = submodule
        self.dim = dim

    def forward(self, input):
        x = _to_numpy(input, "input")  # numpy, or CuPy on the GPU (a torch CUDA tensor read through DLPack)
        y = _to_numpy(self.submodule(input), "the submodule's output")
        xp = array_namespace(x)
        d = self.dim % x.ndim if x.ndim else 0
        if y.ndim != x.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, y.shape)) if i != d):
            raise ValueError(f"SkipConcat: the submodule gives shape {tuple(y.shape)}, which does not match the "
                             f"input's {tuple(x.shape)} on every dim but {self.dim}")
        self._save(split=x.shape[d], dim=d)
        return xp.concatenate([x, y], axis=d)

    def backward(self, grad_output, input_grad=True):
        ctx = self._saved()
        g = _to_numpy(grad_output, "grad_output")
        xp = array_namespace(g)
        gx, gy = xp.split(g, [ctx["split"]], axis=ctx["dim"])
        gs = backward_through(self.submodule, xp.ascontiguousarray(gy), input_grad)
        if not input_grad:
            return None
        return gx + gs

    def extra_repr(self):
        return f"dim={self.dim}"
