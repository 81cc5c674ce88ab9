"""The losses and their gradients against torch autograd (DiceLoss against MONAI's formula written
in torch)."""

import numpy as np
import pytest

import medconv.nn as nn
from conftest import assert_close, rand

REDUCTIONS = ["mean", "sum", "none"]


def _check(torch, ours, theirs, x, target, ttarget=None, rng=None, scale=1.0):
    tx = torch.tensor(x, requires_grad=True)
    tl = theirs(tx, torch.tensor(target) if ttarget is None else ttarget)
    loss = ours(x, target)
    assert_close(np.asarray(loss), tl.detach().numpy(), scale=scale, what="loss")
    if tl.ndim:
        go = rand(rng, tuple(tl.shape), x.dtype)
        tl.backward(torch.tensor(go))
        g = ours.backward(go)
    else:
        tl.backward()
        g = ours.backward()
    assert g.dtype == x.dtype
    assert_close(g, tx.grad.numpy(), scale=scale, what="grad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices(torch, rng, reduction):
    for shape, kw in [((6, 4), {}), ((3, 5, 2, 3), {}), ((7, 3), dict(weight=[0.2, 1.0, 3.0])),
                      ((8, 4), dict(ignore_index=1)), ((5, 3), dict(label_smoothing=0.2)),
                      ((6, 3), dict(label_smoothing=0.1, weight=[1.0, 2.0, 0.5], ignore_index=0)), ((4,), {})]:
        x = rand(rng, shape, np.float64) * 3
        c = shape[1] if len(shape) > 1 else shape[0]
        target = rng.integers(0, c, (shape[0],) + shape[2:] if len(shape) > 1 else ())
        target = np.asarray(target, dtype=np.int64)
        tkw = dict(kw)
        if "weight" in tkw:
            tkw["weight"] = torch.tensor(tkw["weight"], dtype=torch.float64)
        _check(torch, nn.CrossEntropyLoss(**kw, reduction=reduction),
               torch.nn.CrossEntropyLoss(**tkw, reduction=reduction), x, target, rng=rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities(torch, rng, reduction):
    for shape, kw in [((5, 4), {}), ((2, 3, 4), dict(label_smoothing=0.3)), ((4, 3), dict(weight=[1.0, 0.5, 2.0]))]:
        x = rand(rng, shape, np.float64) * 2
        p = rng.random(shape)
        p /= p.sum(axis=1, keepdims=True)
        tkw = dict(kw)
        if "weight" in tkw:
            tkw["weight"] = torch.tensor(tkw["weight"], dtype=torch.float64)
        _check(torch, nn.CrossEntropyLoss(**kw, reduction=reduction),
               torch.nn.CrossEntropyLoss(**tkw, reduction=reduction), x, p, rng=rng)


def test_cross_entropy_float32_and_errors(torch, rng):
    x = rand(rng, (16, 10), np.float32) * 5
    t = rng.integers(0, 10, 16)
    _check(torch, nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), x, t, scale=10)
    with pytest.raises(ValueError, match=r"class indices outside \[0, 10\)"):
        nn.CrossEntropyLoss()(x, np.full(16, 12))
    with pytest.raises(ValueError, match="must have shape"):
        nn.CrossEntropyLoss()(x, np.zeros(15, np.int64))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between"):
        nn.CrossEntropyLoss(label_smoothing=2)
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        loss = nn.CrossEntropyLoss()
        loss(x, t)
        loss.backward(np.ones(3))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(torch, rng, reduction):
    for shape, kw in [((6, 3), {}), ((4, 3), dict(pos_weight=[1.0, 2.0, 0.5])), ((3, 2, 4), dict(weight=[0.5] * 4)),
                      ((5, 1), dict(weight=[2.0], pos_weight=[3.0]))]:
        x = rand(rng, shape, np.float64) * 30  # large logits: the stable formula matters
        y = rng.random(shape)
        tkw = {k: torch.tensor(v, dtype=torch.float64) for k, v in kw.items()}
        _check(torch, nn.BCEWithLogitsLoss(**kw, reduction=reduction),
               torch.nn.BCEWithLogitsLoss(**tkw, reduction=reduction), x, y, rng=rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse(torch, rng, reduction):
    x = rand(rng, (4, 3, 2), np.float64)
    y = rand(rng, (4, 3, 2), np.float64)
    _check(torch, nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), x, y, rng=rng)
    with pytest.raises(ValueError, match="target must have input's shape"):
        nn.MSELoss()(x, y[:2])


def _torch_dice(torch, x, t, *, sigmoid=False, softmax=False, include_background=True, squared_pred=False,
                batch=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5):
    """MONAI's DiceLoss formula, written in torch."""
    p = torch.sigmoid(x) if sigmoid else torch.softmax(x, 1) if softmax else x
    if not include_background:
        p, t = p[:, 1:], t[:, 1:]
    axes = list(range(2, x.ndim))
    if batch:
        axes = [0] + axes
    inter = (p * t).sum(axes)
    po = (p * p).sum(axes) if squared_pred else p.sum(axes)
    go = (t * t).sum(axes) if squared_pred else t.sum(axes)
    f = 1.0 - (2.0 * inter + smooth_nr) / (po + go + smooth_dr)
    return f.mean() if reduction == "mean" else f.sum() if reduction == "sum" else f


@pytest.mark.parametrize("kw", [dict(softmax=True), dict(sigmoid=True, squared_pred=True),
                                dict(softmax=True, include_background=False, batch=True),
                                dict(reduction="sum"), dict(sigmoid=True, reduction="none", smooth_nr=0.0)])
def test_dice(torch, rng, kw):
    x = rand(rng, (2, 3, 4, 5), np.float64) * 2
    labels = rng.integers(0, 3, (2, 4, 5))
    onehot = np.eye(3)[labels].transpose(0, 3, 1, 2).copy()
    if not (kw.get("softmax") or kw.get("sigmoid")):
        x = rng.random(x.shape)
    _check(torch, nn.DiceLoss(**kw), lambda a, b: _torch_dice(torch, a, b, **kw), x, onehot, rng=rng)
    # class labels with to_onehot_y, (N, 1, ...) or (N, ...)
    d = nn.DiceLoss(to_onehot_y=True, **kw)
    assert_close(np.asarray(d(x, labels[:, None])), np.asarray(nn.DiceLoss(**kw)(x, onehot)))
    assert_close(np.asarray(d(x, labels)), np.asarray(nn.DiceLoss(**kw)(x, onehot)))


def test_dice_errors(rng):
    with pytest.raises(ValueError, match="mutually exclusive"):
        nn.DiceLoss(sigmoid=True, softmax=True)
    x = rand(rng, (2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target labels must lie in \[0, 3\)"):
        nn.DiceLoss(to_onehot_y=True)(x, np.full((2, 4), 3))
    with pytest.raises(ValueError, match="or pass to_onehot_y=True"):
        nn.DiceLoss()(x, np.zeros((2, 4)))
