"""from_torch: a torch.nn model built from the layers medconv.nn has (nested Sequentials included)
becomes the medconv model that computes the same outputs, weights and buffers copied."""
from __future__ import annotations

import inspect
from collections import OrderedDict

from .module import Module, ModuleList, Sequential


def _layer_classes():
    from . import _all_modules

    return {cls.__name__: cls for cls in _all_modules()}


def _kwargs_from(torch_module, cls):
    """Constructor arguments for cls read from the torch module's attributes of the same names."""
    kwargs = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "device", "dtype") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name == "bias" and isinstance(p.default, bool):
            kwargs[name] = getattr(torch_module, "bias", None) is not None
        elif hasattr(torch_module, name):
            kwargs[name] = getattr(torch_module, name)
        elif p.default is p.empty:
            raise TypeError(f"cannot read {name!r} from {type(torch_module).__name__}")
    if "dtype" in inspect.signature(cls.__init__).parameters:
        for t in list(torch_module.parameters()) + list(torch_module.buffers()):
            if t.is_floating_point():
                kwargs["dtype"] = str(t.dtype).split(".", 1)[1]
                break
    return kwargs


def from_torch(module) -> Module:
    """The medconv model equivalent to `module`, a torch.nn layer or a Sequential / ModuleList of
    them (Conv, ConvTranspose, pools, BatchNorm, Dropout, activations, Flatten, Linear, Upsample,
    Identity). Its state dict (torch's key names) is copied; train/eval mode is kept."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    if type(module) is torch.nn.Sequential:
        out = Sequential(OrderedDict((k, from_torch(m)) for k, m in module.named_children()))
    elif type(module) is torch.nn.ModuleList:
        out = ModuleList([from_torch(m) for m in module])
    else:
        name = type(module).__name__
        cls = _layer_classes().get(name)
        if cls is None or getattr(torch.nn, name, None) is not type(module) or issubclass(cls, (Sequential,
                                                                                                  ModuleList)):
            raise TypeError(f"cannot convert {name}: from_torch converts torch.nn layers that medconv.nn has "
                            "(and Sequential / ModuleList of them); write the model as a Sequential of those")
        out = cls(**_kwargs_from(module, cls))
        state = OrderedDict((k, v.detach().cpu().numpy()) for k, v in module.state_dict().items())
        out.load_state_dict(state)
    out.train(bool(module.training))
    return out


__all__ = ["from_torch"]
