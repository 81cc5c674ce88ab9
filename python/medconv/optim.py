"""SGD (momentum, dampening, nesterov, weight_decay), Adam and AdamW with torch.optim's arguments
and update formulas (the single-tensor path), step by step. Parameters are medconv.nn Parameters,
updated in place from their .grad (those without a gradient are skipped). Parameters on the GPU
(CuPy, after Module.to("cuda")) are updated there, their state kept on the GPU."""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from ._backend import _is_cupy, array_namespace


def _check(value, name, low=0.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
        raise ValueError(f"Invalid {name}: {value!r}")
    return float(value)


def _is_array(p) -> bool:
    return isinstance(p, np.ndarray) or _is_cupy(p)


def _values(p):
    """A parameter's values as a plain array (a CPU Parameter viewed as numpy; a CuPy array as it is)."""
    return p.view(np.ndarray) if isinstance(p, np.ndarray) else p


def _where(a) -> str:
    return "on the GPU" if _is_cupy(a) else "on the CPU"


class Optimizer:
    """param_groups (a list of dicts: "params" and the options), per-parameter state, step()."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if _is_array(ps) else list(ps)
        for p in group["params"]:
            if not _is_array(p) or p.dtype.kind != "f":
                raise TypeError(f"optimizers take float arrays (medconv.nn Parameters), got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or getattr(p, "grad", None) is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def _params_with_grad(self, group):
        for p in group["params"]:
            g = getattr(p, "grad", None)
            if g is None:
                continue
            g = g if _is_cupy(g) else np.asarray(g)
            if _is_cupy(g) != _is_cupy(p):
                raise TypeError(f"a gradient is {_where(g)} but its parameter is {_where(p)}; move the model "
                                "with Module.to() before computing gradients")
            if g.shape != p.shape:
                raise ValueError(f"a gradient has shape {g.shape} but its parameter has shape {p.shape}")
            yield p, g.astype(p.dtype, copy=False)

    def _state(self, p):
        return self.state.setdefault(id(p), {})

    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [...]}, parameters numbered in order, as torch."""
        index, groups, state = {}, [], {}
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        for pid, i in index.items():
            if pid in self.state:
                state[i] = copy.deepcopy(self.state[pid])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict has a different number of parameter groups or parameters")
        params = [p for g in self.param_groups for p in g["params"]]
        self.state = {}
        for i, s in state_dict["state"].items():
            self.state[id(params[int(i)])] = copy.deepcopy(s)
        for g, saved in zip(self.param_groups, groups):
            g.update({k: v for k, v in saved.items() if k != "params"})

    def step(self, closure=None):
        raise NotImplementedError

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """g = grad (+ weight_decay * p); with momentum: buf = momentum * buf + (1 - dampening) * g
    (buf = g at the first step), g = g + momentum * buf (nesterov) or buf; p -= lr * g."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        lr, momentum = _check(lr, "learning rate"), _check(momentum, "momentum value")
        weight_decay = _check(weight_decay, "weight_decay value")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=float(dampening),
                                      weight_decay=weight_decay, nesterov=bool(nesterov), maximize=bool(maximize)))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p, g in self._params_with_grad(group):
                values = _values(p)  # updated in place, without the Parameter's ufunc wrapper
                if group["maximize"]:
                    g = -g
                if wd != 0:
                    g = g + p.dtype.type(wd) * values
                if mom != 0:
                    st = self._state(p)
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = g.copy()
                        st["momentum_buffer"] = buf
                    else:
                        buf *= p.dtype.type(mom)
                        buf += p.dtype.type(1 - damp) * g
                    g = g + p.dtype.type(mom) * buf if nesterov else buf
                values -= p.dtype.type(lr) * g
        return loss


class Adam(Optimizer):
    """m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2;
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps) (amsgrad: the running max of v).
    weight_decay adds weight_decay * p to g (L2), as torch's Adam."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        lr, eps = _check(lr, "learning rate"), _check(eps, "epsilon value")
        weight_decay = _check(weight_decay, "weight_decay value")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"Invalid beta parameters: {betas!r}")
        super().__init__(params, dict(lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps,
                                      weight_decay=weight_decay, amsgrad=bool(amsgrad), maximize=bool(maximize)))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p, g in self._params_with_grad(group):
                values = _values(p)  # updated in place, without the Parameter's ufunc wrapper
                t = p.dtype.type
                xp = array_namespace(p)
                if group["maximize"]:
                    g = -g
                st = self._state(p)
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = xp.zeros(p.shape, p.dtype)
                    st["exp_avg_sq"] = xp.zeros(p.shape, p.dtype)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = xp.zeros(p.shape, p.dtype)
                st["step"] += 1
                step = st["step"]
                if wd != 0:
                    if self._decoupled:
                        values *= t(1 - lr * wd)
                    else:
                        g = g + t(wd) * values
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m += t(1 - beta1) * (g - m)  # torch's lerp_(g, 1 - beta1) for a weight below 0.5
                v *= t(beta2)
                v += t(1 - beta2) * g * g
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = math.sqrt(bias_correction2)
                if group["amsgrad"]:
                    xp.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                    denom = xp.sqrt(st["max_exp_avg_sq"]) / t(bias_correction2_sqrt) + t(eps)
                else:
                    denom = xp.sqrt(v) / t(bias_correction2_sqrt) + t(eps)
                values -= t(step_size) * (m / denom)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
