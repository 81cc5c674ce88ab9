"""Module, Parameter and the containers: state dicts with torch's keys, train/eval, grads,
repr, and the skip connections (Residual, SkipConcat) against torch autograd."""

import numpy as np
import pytest

import medconv.nn as nn
from conftest import assert_close, rand


def _torch_net(torch):
    T = torch.nn
    return T.Sequential(
        T.Conv2d(1, 4, 3, padding=1), T.BatchNorm2d(4), T.ReLU(), T.MaxPool2d(2),
        T.Sequential(T.Conv2d(4, 6, 3, padding=1, bias=False), T.LeakyReLU(0.1)),
        T.AdaptiveAvgPool2d(2), T.Flatten(), T.Dropout(0.5), T.Linear(24, 3),
    ).double()


def _medconv_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.LeakyReLU(0.1)),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(24, 3),
    ).double()


def test_state_dict_keys_repr_and_torch_state_dict(torch, rng):
    t, m = _torch_net(torch), _medconv_net()
    assert list(m.state_dict()) == list(t.state_dict())
    assert repr(m) == repr(t)
    m.load_state_dict(t.state_dict())  # torch tensors load as they are
    for k, v in t.state_dict().items():
        assert np.array_equal(m.state_dict()[k], v.numpy())
    assert m.state_dict()["1.num_batches_tracked"].dtype == np.int64
    t.eval()
    m.eval()
    x = rand(rng, (2, 1, 8, 8), np.float64)
    assert_close(m(x), t(torch.tensor(x)).detach().numpy())
    assert [k for k, _ in m.named_parameters()] == [k for k, _ in t.named_parameters()]


def test_load_state_dict_errors():
    m = _medconv_net()
    sd = m.state_dict()
    del sd["0.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\]"):
        m.load_state_dict(sd)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == []
    sd = m.state_dict()
    sd["0.weight"] = np.zeros((4, 1, 2, 2))
    with pytest.raises(ValueError, match="size mismatch for 0.weight"):
        m.load_state_dict(sd)
    with pytest.raises(TypeError, match="must be a mapping"):
        m.load_state_dict([1, 2])


def test_train_eval_grads_and_parameters(rng):
    m = _medconv_net()
    assert m.training and m[1].training
    m.eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    x = rand(rng, (2, 1, 8, 8), np.float64)
    g = rand(rng, (2, 3), np.float64)
    nn.manual_seed(0)
    m(x)
    m.backward(g)
    first = {k: p.grad.copy() for k, p in m.named_parameters()}
    nn.manual_seed(0)
    m(x)
    m.backward(g)  # gradients accumulate
    for k, p in m.named_parameters():
        assert_close(p.grad, 2 * first[k], what=k)
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert len(list(m.parameters())) == 7 and m[4][0].bias is None
    assert m.dtype == np.float64 and m.float().dtype == np.float32
    assert m[0].weight.dtype == np.float32 and m[1].running_mean.dtype == np.float32


def test_parameter_behaviour():
    p = nn.Parameter(np.ones((2, 3), np.float32))
    assert p.grad is None and p.requires_grad
    q = p * 2
    assert type(q) is np.ndarray
    p -= 0.5
    assert isinstance(p, nn.Parameter) and np.all(p.data == 0.5)
    lin = nn.Linear(3, 2)
    lin.weight -= 1.0  # stays the registered parameter
    assert isinstance(lin.weight, nn.Parameter) and "weight" in dict(lin.named_parameters())
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Parameter(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="cannot assign ndarray to parameter 'weight'"):
        lin.weight = np.zeros((2, 3))


def test_to_device_and_dtype_arguments(rng, monkeypatch):
    import sys

    import medconv._cuda as _cuda

    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    w = m[0].weight
    assert m.to("cpu") is m and m[0].weight is w and m.device == "cpu"  # nothing to move: the same objects
    w.grad = np.ones_like(w)
    assert m.to(np.float64) is m and m.dtype == np.float64 and m[1].running_var.dtype == np.float64
    assert m[0].weight.grad.dtype == np.float64  # the gradient moves along
    assert m[1].num_batches_tracked.dtype == np.int64
    m.to("cpu", dtype="float32")
    assert m.dtype == np.float32
    m.to(device="cpu", dtype=np.float64)
    assert m.dtype == np.float64
    m.to(dtype="float32", device="cpu")
    assert m.dtype == np.float32 and isinstance(m[0].weight, nn.Parameter)
    with pytest.raises(TypeError, match="needs a device"):
        m.to()
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'mps'"):
        m.to("mps")
    with pytest.raises(ValueError, match="device must be"):
        m.to("cuda:x")
    with pytest.raises(TypeError, match="two dtypes"):
        m.to(np.float32, np.float64)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        m.to(np.int32)
    with pytest.raises(TypeError, match="unexpected keyword"):
        m.to("cpu", copy=True)
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    tied = nn.Sequential(a, b).to(np.float64)
    assert tied[0].weight is tied[1].weight and len(list(tied.parameters())) == 3
    monkeypatch.setitem(sys.modules, "cupy", None)  # no CuPy: say what to install
    with pytest.raises(_cuda.GPUUnavailableError, match=r"pip install 'medconv\[cuda\]'"):
        m.to("cuda")
    assert m.device == "cpu" and isinstance(m[0].weight, np.ndarray)


def test_to_takes_torch_devices_and_dtypes(torch):
    m = nn.Linear(2, 3)
    assert m.to(torch.device("cpu"), torch.float64).dtype == np.float64 and m.device == "cpu"


def test_no_grad_and_backward_errors(rng):
    lin = nn.Linear(3, 2)
    x = rand(rng, (4, 3), np.float32)
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        lin(x)
    assert nn.is_grad_enabled()
    with pytest.raises(RuntimeError, match="under no_grad"):
        lin.backward(np.ones((4, 2), np.float32))

    class NoBackward(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match="NoBackward has no backward"):
        NoBackward().backward(x)


def test_residual_block_against_torch(torch, rng):
    T = torch.nn
    tbody = T.Sequential(T.Conv2d(3, 3, 3, padding=1), T.BatchNorm2d(3), T.ReLU(), T.Conv2d(3, 3, 3, padding=1))
    tshort = T.Conv2d(3, 3, 1)
    tbody, tshort = tbody.double(), tshort.double()
    block = nn.Sequential(nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                                                    nn.Conv2d(3, 3, 3, padding=1)), nn.Conv2d(3, 3, 1)),
                          nn.ReLU()).double()
    block[0].body.load_state_dict(tbody.state_dict())
    block[0].shortcut.load_state_dict(tshort.state_dict())
    assert list(block.state_dict())[:2] == ["0.body.0.weight", "0.body.0.bias"]
    x = rand(rng, (2, 3, 5, 6), np.float64)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tbody(tx) + tshort(tx))
    gy = rand(rng, tuple(ty.shape), np.float64)
    ty.backward(torch.tensor(gy))
    assert_close(block(x), ty.detach().numpy())
    assert_close(block.backward(gy), tx.grad.numpy())
    assert_close(block[0].shortcut.weight.grad, tshort.weight.grad.numpy())
    assert_close(block[0].body[0].weight.grad, tbody[0].weight.grad.numpy())
    ident = nn.Residual(nn.Tanh())
    gi = ident.backward(np.ones((2, 2))) if ident(np.zeros((2, 2))) is not None else None
    assert_close(gi, 2 * np.ones((2, 2)))
    with pytest.raises(ValueError, match="add a shortcut module"):
        nn.Residual(nn.Linear(2, 3))(np.zeros((1, 2), np.float32))


def test_unet_skip_concat_against_torch(torch, rng):
    """A 2-level 2D U-Net: encoder, SkipConcat(down, inner, up), decoder."""
    T = torch.nn
    t_enc, t_inner, t_up, t_dec = (T.Conv2d(1, 4, 3, padding=1), T.Conv2d(4, 8, 3, padding=1),
                                   T.ConvTranspose2d(8, 4, 2, stride=2), T.Conv2d(8, 2, 1))
    for t in (t_enc, t_inner, t_up, t_dec):
        t.double()
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.SkipConcat(nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                                    nn.ConvTranspose2d(8, 4, 2, stride=2))),
        nn.Conv2d(8, 2, 1),
    ).double()
    model[0].load_state_dict(t_enc.state_dict())
    model[2].submodule[1].load_state_dict(t_inner.state_dict())
    model[2].submodule[3].load_state_dict(t_up.state_dict())
    model[3].load_state_dict(t_dec.state_dict())
    x = rand(rng, (2, 1, 8, 6), np.float64)
    tx = torch.tensor(x, requires_grad=True)
    e = torch.relu(t_enc(tx))
    u = t_up(torch.relu(t_inner(torch.nn.functional.max_pool2d(e, 2))))
    ty = t_dec(torch.cat([e, u], dim=1))
    gy = rand(rng, tuple(ty.shape), np.float64)
    ty.backward(torch.tensor(gy))
    assert_close(model(x), ty.detach().numpy())
    assert_close(model.backward(gy), tx.grad.numpy())
    assert_close(model[2].submodule[1].weight.grad, t_inner.weight.grad.numpy())
    assert_close(model[0].weight.grad, t_enc.weight.grad.numpy())
    assert "SkipConcat(\n    dim=1\n    (submodule): Sequential(" in repr(model)
    with pytest.raises(ValueError, match="does not match the input's"):
        nn.SkipConcat(nn.MaxPool2d(2))(np.zeros((1, 1, 4, 4), np.float32))


def test_unet_3d_trains_a_step(rng):
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2), nn.ReLU(),
        nn.SkipConcat(nn.Sequential(nn.MaxPool3d(2), nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(),
                                    nn.Upsample(scale_factor=2, mode="trilinear"), nn.Conv3d(4, 2, 1))),
        nn.Conv3d(4, 3, 1),
    )
    x = rand(rng, (2, 1, 4, 6, 4), np.float32)
    labels = rng.integers(0, 3, (2, 4, 6, 4))
    dice = nn.DiceLoss(softmax=True, to_onehot_y=True)
    from medconv import optim

    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        losses.append(float(dice(model(x), labels)))
        model.zero_grad()
        model.backward(dice.backward(), input_grad=False)
        opt.step()
    assert losses[-1] < losses[0]


def test_sequential_and_module_list_api():
    s = nn.Sequential(nn.ReLU(), nn.Tanh())
    assert len(s) == 2 and isinstance(s[-1], nn.Tanh) and isinstance(s[0:1], nn.Sequential)
    s.append(nn.Sigmoid())
    assert list(s._modules) == ["0", "1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        s[5]
    with pytest.raises(TypeError, match="Sequential takes Modules"):
        nn.Sequential(nn.ReLU(), 3)
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1)])
    assert len(list(ml.parameters())) == 4 and len(ml) == 2


def test_no_grad_is_per_thread():
    import threading

    from medconv import nn as mnn

    inside, seen = threading.Event(), {}
    release = threading.Event()

    def other():
        with mnn.no_grad():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(10)
    seen["main"] = mnn.is_grad_enabled()  # the other thread's no_grad does not reach this one
    release.set()
    t.join(10)
    assert seen["main"] is True
    with mnn.no_grad():
        assert mnn.is_grad_enabled() is False
    assert mnn.is_grad_enabled() is True
