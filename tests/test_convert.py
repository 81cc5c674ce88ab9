"""from_torch: torch models (nested Sequentials included) become medconv models with the same outputs."""

import numpy as np
import pytest

import medconv.nn as nn
from conftest import assert_close, rand


def _torch_model(torch):
    T = torch.nn
    return T.Sequential(
        T.Sequential(T.Conv2d(1, 6, 3, padding=1), T.BatchNorm2d(6), T.ReLU(inplace=True), T.MaxPool2d(2)),
        T.Sequential(T.Conv2d(6, 8, 3, padding=1, padding_mode="replicate"), T.ELU(), T.AvgPool2d(2)),
        T.Upsample(scale_factor=2, mode="nearest"),
        T.ConvTranspose2d(8, 4, 2, stride=2),
        T.AdaptiveAvgPool2d(2), T.Flatten(), T.Dropout(0.3), T.Linear(16, 10), T.GELU(), T.Linear(10, 3),
        T.Softmax(dim=1),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_torch_same_outputs(torch, rng, dtype):
    t = _torch_model(torch)
    if dtype == np.float64:
        t = t.double()
    t.train()
    t(torch.tensor(rand(rng, (4, 1, 8, 8), dtype)))  # running statistics that are not the defaults
    t.eval()
    m = nn.from_torch(t)
    assert not m.training and m.dtype == dtype
    assert repr(m) == repr(t)
    assert isinstance(m[0], nn.Sequential) and isinstance(m[0][1], nn.BatchNorm2d)
    x = rand(rng, (3, 1, 8, 8), dtype)
    with torch.no_grad():
        expected = t(torch.tensor(x)).numpy()
    assert_close(m(x), expected, dtype=dtype, scale=10)
    assert_close(m.predict_proba(x), expected, scale=10)


def test_from_torch_train_mode_batchnorm(torch, rng):
    t = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1), torch.nn.BatchNorm3d(3), torch.nn.Tanh()).double()
    m = nn.from_torch(t)
    x = rand(rng, (2, 2, 3, 4, 3), np.float64)
    assert_close(m(x), t(torch.tensor(x)).detach().numpy())
    assert_close(m[1].running_var, t[1].running_var.numpy())


def test_from_torch_refuses_unknown_layers(torch):
    with pytest.raises(TypeError, match="cannot convert LSTM"):
        nn.from_torch(torch.nn.Sequential(torch.nn.LSTM(3, 3)))

    class MyNet(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="cannot convert MyNet"):
        nn.from_torch(MyNet())

    class MyConv(torch.nn.Conv2d):
        pass

    with pytest.raises(TypeError, match="cannot convert MyConv"):
        nn.from_torch(MyConv(1, 1, 1))
    with pytest.raises(TypeError, match="takes a torch.nn.Module"):
        nn.from_torch(nn.Linear(2, 2))
