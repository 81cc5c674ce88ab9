"""CrossEntropyLoss, BCEWithLogitsLoss, MSELoss (torch.nn's arguments and formulas) and DiceLoss
(MONAI's). `loss = criterion(input, target)` returns the loss (a numpy scalar, or an array with
reduction='none'); `criterion.backward()` then returns the gradient of the loss w.r.t. input.
On the GPU (CuPy input and target) they compute there: the loss is a 0-d CuPy array."""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .._backend import _is_cupy, array_namespace, to_namespace
from ..functional import backward as B
from .module import Module, _host_copy, _to_numpy

REDUCTIONS = ("none", "mean", "sum")


def _as_input(input, name="input"):
    x = _to_numpy(input, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} has dtype {x.dtype}; losses compute in float32 or float64")
    return x


def _target(target, x, name="target"):
    """The target as an array on input's device (TypeError when it is on the other one)."""
    t = _to_numpy(target, name)
    if _is_cupy(t) != _is_cupy(x):
        where = ("on the GPU", "on the CPU")
        raise TypeError(f"{name} is {where[not _is_cupy(t)]} but input is {where[not _is_cupy(x)]}; pass both on "
                        "one device (cupy.asarray / cupy.asnumpy move them)")
    return t


def _onehot(labels, c, xp):
    """float64 one-hot of integer labels (N, *spatial) as (N, c, *spatial)."""
    classes = xp.arange(c).reshape((1, c) + (1,) * (labels.ndim - 1))
    return (xp.expand_dims(labels, 1) == classes).astype(np.float64)


class _Loss(Module):
    def _set_reduction(self, reduction):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {set(REDUCTIONS)}, got {reduction!r}")
        self.reduction = reduction

    def _reduce(self, per_element, dtype, denominator=None):
        if self.reduction == "none":
            return per_element.astype(dtype, copy=False)
        total = per_element.sum(dtype=np.float64)
        if self.reduction == "mean":
            total = total / (per_element.size if denominator is None else denominator)
        return total.astype(dtype) if _is_cupy(total) else dtype.type(total)

    def _grad_scale(self, grad_output, shape, dtype, denominator=None):
        """d(reduced loss)/d(per-element loss), broadcastable to `shape`: a float, or an array of the
        loss's shape (reduction='none' with an array grad_output)."""
        g = 1.0 if grad_output is None else _to_numpy(grad_output, "grad_output")
        g = array_namespace(g).asarray(g, dtype=np.float64)
        if self.reduction == "none":
            if g.shape not in ((), shape):
                raise ValueError(f"grad_output must have the loss's shape {shape} with reduction='none', "
                                 f"got {g.shape}")
            return g if g.ndim else float(g)
        if g.size != 1:
            raise ValueError(f"grad_output must be a scalar for reduction={self.reduction!r}, got shape {g.shape}")
        n = int(np.prod(shape, dtype=np.int64)) if denominator is None else denominator
        return float(g.reshape(())) / n if self.reduction == "mean" else float(g.reshape(()))

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """-sum_c a_c * log_softmax(input)_c per sample, over dim 1 of (N, C, ...) (or (C,)), with class
    indices (int, ignore_index skipped) or class probabilities (float, input's shape) as target;
    weight (C,) and label_smoothing as torch."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
        self._set_reduction(reduction)
        self.weight = None if weight is None else np.array(_to_numpy(weight, "weight"), dtype=np.float64)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        x = _as_input(input)
        t = _target(target, x)
        xp = array_namespace(x)
        unbatched = x.ndim == 1
        if unbatched:
            x, t = x[None], t[None]
        if x.ndim < 2:
            raise ValueError(f"input must be (C,), (N, C) or (N, C, d1, ...), got shape {tuple(x.shape)}")
        c = x.shape[1]
        w = xp.ones(c) if self.weight is None else to_namespace(self.weight, xp)
        if w.shape != (c,):
            raise ValueError(f"weight must have shape ({c},) for an input with {c} classes, got {w.shape}")
        logp = F.log_softmax(xp.ascontiguousarray(x), dim=1).astype(np.float64, copy=False)
        shape = (1, c) + (1,) * (x.ndim - 2)
        wb = w.reshape(shape)
        eps = self.label_smoothing
        if t.dtype.kind in "iu":  # class indices
            if t.shape != (x.shape[0],) + x.shape[2:]:
                raise ValueError(f"target of class indices must have shape {(x.shape[0],) + x.shape[2:]} for input "
                                 f"{tuple(x.shape)}, got {tuple(t.shape)}")
            valid = t != self.ignore_index
            bad = valid & ((t < 0) | (t >= c))
            if bad.any():
                raise ValueError(f"target has class indices outside [0, {c}): "
                                 f"{np.unique(_host_copy(t[bad]))[:5].tolist()}")
            tc = xp.where(valid, t, 0)
            onehot = _onehot(tc, c, xp)
            onehot *= xp.expand_dims(valid, 1)
            coef = (1 - eps) * onehot * wb  # a_c
            if eps > 0:
                coef = coef + eps / c * wb * xp.expand_dims(valid, 1)
            denominator = float((w[tc] * valid).sum())
        elif t.dtype.kind == "f":  # class probabilities
            if t.shape != x.shape:
                raise ValueError(f"target of class probabilities must have input's shape {tuple(x.shape)}, "
                                 f"got {tuple(t.shape)}")
            p = t.astype(np.float64)
            if eps > 0:
                p = p * (1 - eps) + eps / c
            coef = p * wb
            denominator = float(x.shape[0] * int(np.prod(x.shape[2:], dtype=np.int64)))
        else:
            raise TypeError(f"target must be class indices (int) or class probabilities (float), got {t.dtype}")
        per_sample = -(coef * logp).sum(axis=1)
        if unbatched:
            per_sample = per_sample[0]
        self._save(logp=logp, coef=coef, denominator=denominator, dtype=x.dtype, shape=per_sample.shape,
                   unbatched=unbatched, src=input)
        return self._reduce(per_sample, x.dtype, denominator)

    def backward(self, grad_output=None):
        """d loss / d input = (sum_c a_c) * softmax(input) - a, times the reduction's scale."""
        ctx = self._saved()
        scale = self._grad_scale(grad_output, ctx["shape"], ctx["dtype"], ctx["denominator"])
        if ctx["unbatched"] and np.ndim(scale):
            scale = scale[None]
        coef = ctx["coef"]
        xp = array_namespace(coef)
        g = coef.sum(axis=1, keepdims=True) * xp.exp(ctx["logp"]) - coef
        g = g * xp.expand_dims(scale, 1) if np.ndim(scale) else g * scale
        g = g.astype(ctx["dtype"])
        return g[0] if ctx["unbatched"] else g


class BCEWithLogitsLoss(_Loss):
    """-w [pos_weight * y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], computed stably from logits."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
        self._set_reduction(reduction)
        self.weight = None if weight is None else np.array(_to_numpy(weight, "weight"), dtype=np.float64)
        self.pos_weight = None if pos_weight is None else np.array(_to_numpy(pos_weight, "pos_weight"),
                                                                   dtype=np.float64)

    def forward(self, input, target):
        x = _as_input(input)
        y = _target(target, x).astype(np.float64)
        xp = array_namespace(x)
        if y.shape != x.shape:
            raise ValueError(f"target must have input's shape {tuple(x.shape)}, got {tuple(y.shape)}")
        xd = x.astype(np.float64)
        lw = 1.0 if self.pos_weight is None else (to_namespace(self.pos_weight, xp) - 1) * y + 1
        softplus_neg = xp.log1p(xp.exp(-xp.abs(xd))) + xp.maximum(-xd, 0)  # -log sigmoid(x)
        loss = (1 - y) * xd + lw * softplus_neg
        w = 1.0 if self.weight is None else to_namespace(self.weight, xp)
        loss = loss * w
        self._save(x=xd, y=y, lw=lw, w=w, dtype=x.dtype, shape=x.shape)
        return self._reduce(loss, x.dtype)

    def backward(self, grad_output=None):
        """w * ((1 - y) - lw * sigmoid(-x)), times the reduction's scale."""
        ctx = self._saved()
        scale = self._grad_scale(grad_output, ctx["shape"], ctx["dtype"])
        xp = array_namespace(ctx["x"])
        sig_neg = 1.0 / (1.0 + xp.exp(ctx["x"]))
        g = ctx["w"] * ((1 - ctx["y"]) - ctx["lw"] * sig_neg) * scale
        return xp.broadcast_to(g, ctx["shape"]).astype(ctx["dtype"])


class MSELoss(_Loss):
    """(input - target)^2, reduced."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
        self._set_reduction(reduction)

    def forward(self, input, target):
        x = _as_input(input)
        y = _target(target, x)
        if y.shape != x.shape:
            raise ValueError(f"target must have input's shape {tuple(x.shape)}, got {tuple(y.shape)}")
        d = x.astype(np.float64) - y.astype(np.float64)
        self._save(d=d, dtype=x.dtype, shape=x.shape)
        return self._reduce(d * d, x.dtype)

    def backward(self, grad_output=None):
        ctx = self._saved()
        scale = self._grad_scale(grad_output, ctx["shape"], ctx["dtype"])
        return (2 * ctx["d"] * scale).astype(ctx["dtype"])


class DiceLoss(_Loss):
    """1 - (2 sum(p t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr) per sample and channel, summed over
    the spatial dims (and the batch with batch=True), as MONAI's DiceLoss. p = input after sigmoid or
    softmax (if asked); target: same shape as input, or class labels (N, 1, ...) / (N, ...) with
    to_onehot_y=True. include_background=False drops channel 0."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, squared_pred=False,
                 reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
        super().__init__()
        if sigmoid and softmax:
            raise ValueError("sigmoid and softmax are mutually exclusive")
        self._set_reduction(reduction)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax
        self.squared_pred = squared_pred
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
        self.batch = batch

    def forward(self, input, target):
        x = _as_input(input)
        if x.ndim < 3:
            raise ValueError(f"input must be (N, C, *spatial), got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        t = _target(target, x)
        xp = array_namespace(x)
        if self.to_onehot_y:
            labels = t[:, 0] if t.ndim == x.ndim else t
            if labels.shape != (n,) + x.shape[2:]:
                raise ValueError(f"target labels must have shape {(n, 1) + x.shape[2:]} or {(n,) + x.shape[2:]}, "
                                 f"got {tuple(t.shape)}")
            labels = labels.astype(np.int64)
            if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= c):
                raise ValueError(f"target labels must lie in [0, {c})")
            t = _onehot(labels, c, xp)
        elif t.shape != x.shape:
            raise ValueError(f"target must have input's shape {tuple(x.shape)} (or pass to_onehot_y=True with "
                             f"labels), got {tuple(t.shape)}")
        t = t.astype(np.float64)
        if self.sigmoid:
            p = F.sigmoid(xp.ascontiguousarray(x)).astype(np.float64, copy=False)
        elif self.softmax:
            p = F.softmax(xp.ascontiguousarray(x), dim=1).astype(np.float64, copy=False)
        else:
            p = x.astype(np.float64)
        first = 0 if self.include_background else 1
        ps, ts = p[:, first:], t[:, first:]
        axes = tuple(range(2, x.ndim))
        if self.batch:
            axes = (0,) + axes
        inter = (ps * ts).sum(axis=axes)
        pred_o = (ps * ps if self.squared_pred else ps).sum(axis=axes)
        ground_o = (ts * ts if self.squared_pred else ts).sum(axis=axes)
        num = 2.0 * inter + self.smooth_nr
        den = pred_o + ground_o + self.smooth_dr
        f = 1.0 - num / den
        self._save(p=p, t=ts, num=num, den=den, axes=axes, first=first, dtype=x.dtype, shape=f.shape, x=x)
        return self._reduce(f, x.dtype)

    def backward(self, grad_output=None):
        ctx = self._saved()
        scale = self._grad_scale(grad_output, ctx["shape"], ctx["dtype"])
        num, den, axes = ctx["num"], ctx["den"], ctx["axes"]
        ps = ctx["p"][:, ctx["first"]:]
        xp = array_namespace(ps)

        def expand(a):  # (N, C) or (C,) -> broadcastable to (N, C, *spatial)
            if self.batch:
                a = a[None]
            return a.reshape(a.shape + (1,) * (ps.ndim - 2)) if a.ndim else a

        dpred = 2 * ps if self.squared_pred else 1.0
        # f = 1 - num/den: df/dp = -(2 t den - num dpred) / den^2
        gp_part = -(2 * ctx["t"] * expand(den) - expand(num) * dpred) / expand(den * den)
        gp_part = gp_part * expand(scale) if np.ndim(scale) else gp_part * scale
        gp = xp.zeros_like(ctx["p"])
        gp[:, ctx["first"]:] = gp_part
        dtype = ctx["dtype"]
        if self.sigmoid:
            p = ctx["p"]
            return (gp * p * (1 - p)).astype(dtype)
        if self.softmax:
            return B.softmax_backward(xp.ascontiguousarray(gp.astype(dtype)),
                                      xp.ascontiguousarray(ctx["p"].astype(dtype)), 1)
        return gp.astype(dtype)

    def extra_repr(self):
        return f"sigmoid={self.sigmoid}, softmax={self.softmax}, include_background={self.include_background}"
