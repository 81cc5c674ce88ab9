"""SGD, Adam and AdamW against torch.optim, step by step, from the same weights and gradients."""

import numpy as np
import pytest

import medconv.nn as nn
from medconv import optim
from conftest import assert_close, rand


def _models(torch, rng):
    # torch's initial weights from the test's seed, so every run compares the same steps. The conv
    # has no bias: batch norm removes it, so its gradient is pure rounding and Adam's step on it,
    # m / sqrt(v), is whatever the rounding makes it (a 5e-8 relative difference in one run).
    torch.manual_seed(int(rng.integers(2**31)))
    T = torch.nn
    t = T.Sequential(T.Conv2d(1, 3, 3, padding=1, bias=False), T.BatchNorm2d(3), T.ReLU(), T.Flatten(),
                     T.Linear(48, 4)).double()
    m = nn.from_torch(t)
    return t, m


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True, maximize=True)),
]


@pytest.mark.parametrize("name,kw", CASES)
def test_steps_match_torch(torch, rng, name, kw):
    t, m = _models(torch, rng)
    topt = getattr(torch.optim, name)(t.parameters(), **kw)
    mopt = getattr(optim, name)(m.parameters(), **kw)
    tloss, mloss = torch.nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    for step in range(5):
        x = rand(rng, (6, 1, 4, 4), np.float64)
        y = rng.integers(0, 4, 6)
        topt.zero_grad()
        tl = tloss(t(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        topt.step()
        mopt.zero_grad()
        ml = mloss(m(x), y)
        m.backward(mloss.backward())
        mopt.step()
        assert_close(ml, tl.item(), what=f"loss at step {step}")
        for (k, p), (_, tp) in zip(m.named_parameters(), t.named_parameters()):
            assert_close(p, tp.detach().numpy(), scale=100, what=f"{name} {kw} {k} after step {step}")


def test_float32_adam_and_param_groups(torch, rng):
    T = torch.nn
    t = T.Linear(5, 3)
    m = nn.from_torch(t)
    topt = torch.optim.Adam([{"params": [t.weight], "lr": 0.1}, {"params": [t.bias]}], lr=0.01)
    mopt = optim.Adam([{"params": [m.weight], "lr": 0.1}, {"params": [m.bias]}], lr=0.01)
    for _ in range(3):
        x = rand(rng, (4, 5), np.float32)
        topt.zero_grad()
        t(torch.tensor(x)).sum().backward()
        topt.step()
        mopt.zero_grad()
        m(x)
        m.backward(np.ones((4, 3), np.float32))
        mopt.step()
    assert m.weight.dtype == np.float32
    assert_close(m.weight, t.weight.detach().numpy(), scale=10)
    assert_close(m.bias, t.bias.detach().numpy(), scale=10)


def test_state_dict_round_trip_and_skipped_params(rng):
    m = nn.Linear(3, 2)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(rand(rng, (2, 3), np.float32))
    m.backward(np.ones((2, 2), np.float32))
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1} and sd["param_groups"][0]["params"] == [0, 1]
    opt2 = optim.SGD(m.parameters(), lr=0.5, momentum=0.9)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1
    assert np.array_equal(opt2.state[id(m.weight)]["momentum_buffer"], opt.state[id(m.weight)]["momentum_buffer"])
    m.zero_grad()
    before = m.weight.copy()
    opt.step()  # no gradients: nothing moves (momentum is not applied to params without grad, as torch)
    assert np.array_equal(m.weight, before)


def test_optimizer_errors():
    p = [nn.Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameters"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)
    with pytest.raises(TypeError, match="optimizers take float arrays"):
        optim.SGD([3], lr=0.1)
