"""A short training loop and batched prediction: fit, predict, predict_proba (also Module methods).

A model moved to the GPU (model.to("cuda")) trains and predicts there: x and y (numpy or CuPy) are
copied to the model's device batch by batch; predictions come back as x's kind."""
from __future__ import annotations

import numbers
import sys

import numpy as np

from .. import functional as F
from .._backend import _is_cupy, array_namespace, to_namespace
from .activation import LogSoftmax, Sigmoid, Softmax
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module, Sequential, _module_namespace, _to_numpy, backward_through, no_grad


def _inputs(model, x, name="x"):
    """x as an array of the model's dtype, on the device it is on (a visible cast: fit and predict take
    any float or int array, the layers take only their own dtype)."""
    arr = _to_numpy(x, name)
    if arr.ndim < 1:
        raise ValueError(f"{name} must have a leading batch dim, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} has dtype {arr.dtype}; pass numbers")
    return array_namespace(arr).ascontiguousarray(arr, dtype=model.dtype)


def _batch(a, index, xp):
    """a[index] (numpy ints or a slice) on xp's device (None: where it is)."""
    if _is_cupy(a) and isinstance(index, np.ndarray):
        index = sys.modules["cupy"].asarray(index)
    b = a[index]
    return b if xp is None else to_namespace(b, xp)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _last_layer(model):
    while isinstance(model, Sequential) and len(model):
        model = model[-1]
    return model


def _is_classification(loss):
    return isinstance(loss, (CrossEntropyLoss, BCEWithLogitsLoss))


def _accuracy_count(out, y, loss):
    """The number of correct predictions in a batch (classification losses only)."""
    if array_namespace(out, y) is np:
        out, y = np.asarray(out), np.asarray(y)
    if isinstance(loss, BCEWithLogitsLoss):
        return int(((out > 0) == (y > 0.5)).sum()), int(y.size)
    if y.dtype.kind == "f":  # class probabilities
        y = y.argmax(axis=1)
    return int((out.argmax(axis=1) == y).sum()), int(y.size)


def _evaluate(model, x, y, loss, batch_size):
    """(mean loss, accuracy or None) over (x, y) in eval mode, without recording gradients."""
    total, correct, count, n = 0.0, 0, 0, len(x)
    xp = _module_namespace(model)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for i in range(0, n, batch_size):
                xb, yb = _batch(x, slice(i, i + batch_size), xp), _batch(y, slice(i, i + batch_size), xp)
                out = model(xb)
                total += float(loss(out, yb)) * len(xb)
                if _is_classification(loss):
                    c, k = _accuracy_count(out, yb, loss)
                    correct, count = correct + c, count + k
    finally:
        model.train(was_training)
    return total / max(n, 1), (correct / count if count else None)


def _progress(total, desc, verbose):
    """A tqdm bar on a terminal when verbose == 1; None otherwise."""
    if verbose != 1 or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr, dynamic_ncols=True)


def fit(model: Module, x, y, *, epochs, batch_size, optimizer=None, loss=None, validation_data=None, shuffle=True,
        seed=None, verbose=1):
    """Trains `model` on (x, y) for `epochs` epochs of mini-batches; returns the history, a dict of
    per-epoch lists: "loss", "accuracy" (classification), "val_loss", "val_accuracy" (with
    validation_data=(x_val, y_val)).

    optimizer: a medconv.optim optimizer (default Adam(lr=1e-3)); loss: a medconv.nn loss (default
    CrossEntropyLoss for integer labels, MSELoss for float targets). x is cast to the model's dtype.
    verbose: 0 quiet; 1 a progress bar on a terminal (one line per epoch elsewhere); 2 one line per
    epoch. seed makes the shuffling (and nothing else) reproducible. On a model moved to the GPU, each
    batch is copied to the GPU (x and y may also be CuPy arrays already there).
    """
    from .. import optim

    if not isinstance(model, Module):
        raise TypeError(f"model must be a medconv.nn.Module, got {type(model).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    batch_size = _check_batch_size(batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    xs = _inputs(model, x)
    ys = _to_numpy(y, "y")
    if len(ys) != len(xs):
        raise ValueError(f"x and y must have the same number of samples, got {len(xs)} and {len(ys)}")
    if len(xs) == 0:
        raise ValueError("x is empty")
    if loss is None:
        loss = CrossEntropyLoss() if ys.dtype.kind in "iu" else MSELoss()
    if ys.dtype.kind == "f":
        ys = ys.astype(model.dtype)
    if optimizer is None:
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
    val = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        xv, yv = _inputs(model, validation_data[0], "x_val"), _to_numpy(validation_data[1], "y_val")
        if yv.dtype.kind == "f":
            yv = yv.astype(model.dtype)
        if len(xv) != len(yv):
            raise ValueError(f"x_val and y_val must have the same number of samples, got {len(xv)} and {len(yv)}")
        val = (xv, yv)
    rng = np.random.default_rng(seed)
    classify = _is_classification(loss)
    history = {"loss": []}
    if classify:
        history["accuracy"] = []
    if val is not None:
        history["val_loss"] = []
        if classify:
            history["val_accuracy"] = []
    n = len(xs)
    n_batches = (n + batch_size - 1) // batch_size
    xp = _module_namespace(model)
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        total, correct, count = 0.0, 0, 0
        bar = _progress(n_batches, f"epoch {epoch + 1}/{epochs}", verbose)
        try:
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = _batch(xs, idx, xp), _batch(ys, idx, xp)
                out = model(xb)
                value = float(loss(out, yb))
                if not np.isfinite(value):
                    raise FloatingPointError(f"the loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
                                             "lower the learning rate")
                grad = loss.backward()
                optimizer.zero_grad()
                backward_through(model, grad, input_grad=False)
                optimizer.step()
                total += value * len(idx)
                if classify:
                    c, k = _accuracy_count(out, yb, loss)
                    correct, count = correct + c, count + k
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total / ((b * batch_size) + len(idx)):.4f}", refresh=False)
            history["loss"].append(total / n)
            if classify:
                history["accuracy"].append(correct / count if count else float("nan"))
            if val is not None:
                vl, va = _evaluate(model, val[0], val[1], loss, batch_size)
                history["val_loss"].append(vl)
                if classify:
                    history["val_accuracy"].append(va)
            summary = ", ".join(f"{k}={v[-1]:.4f}" for k, v in history.items())
            if bar is not None:
                bar.set_postfix_str(summary)
            elif verbose:
                print(f"epoch {epoch + 1}/{epochs}: {summary}", flush=True)
        finally:
            if bar is not None:
                bar.close()
    return history


def _outputs(model, x, batch_size):
    batch_size = _check_batch_size(batch_size)
    xs = _inputs(model, x)
    xp = _module_namespace(model)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            outs = [model(_batch(xs, slice(i, i + batch_size), xp)) for i in range(0, len(xs), batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("x is empty")
    out_xp = array_namespace(*outs)
    if out_xp is np:
        outs = [np.asarray(o) for o in outs]
    return to_namespace(out_xp.concatenate(outs, axis=0), array_namespace(xs))  # x's kind


def predict_proba(model: Module, x, batch_size=256):
    """Class probabilities (N, classes, ...), computed batch by batch in eval mode: softmax over dim 1
    of the outputs (the outputs themselves after a final Softmax, exp after LogSoftmax); a single
    logit per sample (binary) gives (N, 2) = [1 - sigmoid, sigmoid]."""
    out = _outputs(model, x, batch_size)
    xp = array_namespace(out)
    last = _last_layer(model)
    if isinstance(last, Softmax):
        return out
    if isinstance(last, LogSoftmax):
        return xp.exp(out)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        p = out.reshape(-1) if isinstance(last, Sigmoid) else F.sigmoid(out.reshape(-1))
        return xp.stack([1 - p, p], axis=1)
    if out.ndim < 2:
        raise ValueError(f"the model's outputs have shape {out.shape}; expected (N, classes, ...)")
    return F.softmax(out, dim=1)


def predict(model: Module, x, batch_size=256):
    """Predicted labels: the argmax over dim 1 of the outputs (N,) or (N, ...) for segmentation; a single
    logit per sample gives 0/1 from its sign."""
    out = _outputs(model, x, batch_size)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        thresh = 0.5 if isinstance(_last_layer(model), Sigmoid) else 0.0
        return (out.reshape(-1) > thresh).astype(np.int64)
    return out.argmax(axis=1)


__all__ = ["fit", "predict", "predict_proba"]
