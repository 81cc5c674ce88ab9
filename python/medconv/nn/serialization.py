"""save / load: one safetensors file holding the state dict, with the architecture (JSON), an optional
preprocess (medconv.pipeline.Preprocess as JSON) and a SHA-256 of the tensors and the preprocess in its
metadata. Loading parses JSON and raw arrays only: it never unpickles or executes anything, rebuilds
only classes of medconv.nn (or ones passed to `register`), and turns a truncated, corrupted or
tampered file into a ValueError."""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from collections import OrderedDict

import numpy as np

from .module import Module, ModuleList, Residual, Sequential, SkipConcat

FORMAT = "medconv"
FORMAT_VERSION = "1"
_MAX_DEPTH = 256
_registry: dict[str, type] = {}


def register(cls):
    """Allows `load` to rebuild a Module subclass of your own, by its class name (usable as a
    decorator). Its constructor arguments must be JSON values (numbers, strings, lists, ...)."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register takes a Module subclass, got {cls!r}")
    _registry[cls.__name__] = cls
    return cls


def _registered():
    if not _registry:
        from . import _all_modules

        for cls in _all_modules():
            _registry.setdefault(cls.__name__, cls)
    return _registry


# ------------------------------------------------------------------------ architecture <-> JSON


def _json_value(v, where):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{where}: non-finite number {v} cannot be saved")
        return v
    if isinstance(v, (tuple, list)):
        return [_json_value(a, where) for a in v]
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return _json_value(v.tolist(), where)
    raise ValueError(f"{where}: the constructor argument of type {type(v).__name__} cannot be saved as JSON")


def architecture(module: Module, depth=0) -> dict:
    """The JSON-ready description of a model: class name, constructor arguments, children."""
    if depth > _MAX_DEPTH:
        raise ValueError("the model is nested too deeply to save")
    name = type(module).__name__
    if _registered().get(name) is not type(module):
        raise ValueError(f"{name} is not a medconv.nn layer; call medconv.nn.register({name}) before save and load")
    spec = {"class": name}
    if isinstance(module, (Sequential, ModuleList)):
        spec["children"] = [[k, architecture(m, depth + 1)] for k, m in module._modules.items()]
        return spec
    if isinstance(module, Residual):
        spec["children"] = [[k, architecture(m, depth + 1)] for k, m in module._modules.items()]
        return spec
    if isinstance(module, SkipConcat):
        spec["args"] = {"dim": module.dim}
        spec["children"] = [["submodule", architecture(module.submodule, depth + 1)]]
        return spec
    args = getattr(module, "_init_args", {})
    clean = {}
    for k, v in args.items():
        if k in ("device", "dtype"):
            continue
        if isinstance(v, Module):
            raise ValueError(f"{name}: a Module passed to the constructor ({k}) cannot be saved; "
                             "use medconv.nn containers")
        if isinstance(v, dict):
            raise ValueError(f"{name}: the constructor argument {k} (a dict) cannot be saved")
        clean[k] = _json_value(v, f"{name}.{k}")
    spec["args"] = clean
    return spec


def _tuples(v):
    """JSON lists back to the tuples the constructors were given (kernel_size=(3, 3), ...)."""
    return tuple(_tuples(a) for a in v) if isinstance(v, list) else v


def _build(spec, depth=0):
    if depth > _MAX_DEPTH:
        raise ValueError("the architecture is nested too deeply")
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ValueError("each module of the architecture must be an object with a 'class' name")
    unknown = set(spec) - {"class", "args", "children"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} in the architecture of {spec['class']}")
    name = spec["class"]
    cls = _registered().get(name)
    if cls is None:
        raise ValueError(f"the architecture names an unknown class {name!r} (only medconv.nn layers and registered "
                         "classes are rebuilt)")
    args = spec.get("args", {})
    if not isinstance(args, dict) or not all(isinstance(k, str) and not k.startswith("_") for k in args):
        raise ValueError(f"the arguments of {name} must be an object of named values")
    args = {k: _tuples(v) for k, v in args.items()}
    children = spec.get("children", [])
    if not isinstance(children, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in children):
        raise ValueError(f"the children of {name} must be a list of [name, module] pairs")
    built = [(k, _build(c, depth + 1)) for k, c in children]
    try:
        if issubclass(cls, Sequential):
            return cls(OrderedDict(built))
        if issubclass(cls, ModuleList):
            return cls([m for _, m in built])
        if issubclass(cls, Residual):
            mods = dict(built)
            if set(mods) - {"body", "shortcut"} or "body" not in mods:
                raise ValueError("a Residual has a 'body' and an optional 'shortcut'")
            return cls(mods["body"], mods.get("shortcut"))
        if issubclass(cls, SkipConcat):
            if len(built) != 1 or built[0][0] != "submodule":
                raise ValueError("a SkipConcat has one 'submodule'")
            return cls(built[0][1], **args)
        if built:
            raise ValueError(f"{name} takes no children")
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot rebuild {name} with arguments {args}: {exc}") from None


# ------------------------------------------------------------------------ files


def _digest(tensors: dict, preprocess=None) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k]).reshape(np.shape(tensors[k]))
        h.update(json.dumps([k, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    if preprocess is not None:  # files without one keep the digest they always had
        h.update(b"\0preprocess\0" + preprocess.encode())
    return h.hexdigest()


def _preprocess_json(preprocess) -> str:
    """A medconv.pipeline.Preprocess (or its JSON text or dict), validated, as JSON text."""
    from ..pipeline import Preprocess

    if not isinstance(preprocess, Preprocess):
        if not isinstance(preprocess, (str, bytes, dict)):
            raise TypeError(f"preprocess must be a medconv.pipeline.Preprocess, got {type(preprocess).__name__}")
        preprocess = Preprocess.from_json(preprocess)
    return preprocess.to_json()


def save(model: Module, path, preprocess=None) -> None:
    """Writes the model's state dict and architecture to one safetensors file at `path`; with
    `preprocess` (a medconv.pipeline.Preprocess) its JSON too, read back by load_preprocess and
    applied by medconv.pipeline.Predictor."""
    from safetensors.numpy import save_file

    if not isinstance(model, Module):
        raise TypeError(f"save takes a medconv.nn.Module, got {type(model).__name__}")
    arch = architecture(model)
    pre = None if preprocess is None else _preprocess_json(preprocess)
    tensors = {k: np.ascontiguousarray(v).reshape(v.shape) for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(arch, separators=(",", ":")),
        "sha256": _digest(tensors, pre),
    }
    if pre is not None:
        metadata["preprocess"] = pre
    save_file(tensors, os.fspath(path), metadata=metadata)


def _read_checked(path):
    """(metadata, tensors) of a file that `save` wrote, after every integrity check."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # the safetensors parser's own error type, or a read error
        raise ValueError(f"{path!r} is not a readable safetensors file (truncated or corrupted?): {exc}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} was not written by medconv.nn.save (no medconv metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {meta.get('format_version')!r}; this medconv reads "
                         f"{FORMAT_VERSION!r}")
    if meta.get("sha256") != _digest(tensors, meta.get("preprocess")):
        raise ValueError(f"{path!r} fails its checksum: the tensors or the preprocess were modified after saving")
    return meta, tensors


def load_preprocess(path):
    """The preprocess JSON text that save(..., preprocess=p) stored in `path` (None when it has none),
    after the same integrity checks as load; medconv.pipeline.Preprocess.from_json reads it."""
    return _read_checked(path)[0].get("preprocess")


def load(path) -> Module:
    """Rebuilds the model that `save` wrote to `path` (in train mode, with the saved dtype)."""
    path = os.fspath(path)
    meta, tensors = _read_checked(path)
    try:
        arch = json.loads(meta.get("architecture", ""))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path!r} has an unreadable architecture: {exc}") from None
    try:
        model = _build(arch)
    except RecursionError:
        raise ValueError(f"{path!r} has an architecture nested too deeply") from None
    floats = {t.dtype for t in tensors.values() if t.dtype.kind == "f"}
    if len(floats) == 1:
        model.to(floats.pop())
    own = model.state_dict()
    if set(own) != set(tensors):
        raise ValueError(f"{path!r}: the tensors do not match the architecture (missing "
                         f"{sorted(set(own) - set(tensors))}, unexpected {sorted(set(tensors) - set(own))})")
    model.load_state_dict(tensors)
    return model


__all__ = ["save", "load", "load_preprocess", "register", "architecture"]
