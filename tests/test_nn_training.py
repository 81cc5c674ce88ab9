"""fit / predict / predict_proba: a small CNN learns the scikit-learn digits; history, verbosity,
batching and errors."""

import numpy as np
import pytest

import medconv.nn as nn
from medconv import optim


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    n = int(0.75 * len(y))
    return x[:n], y[:n], x[n:], y[n:]


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )


def test_digits_reach_97_percent(digits, capsys):
    xtr, ytr, xte, yte = digits
    nn.manual_seed(0)
    model = small_cnn()
    history = model.fit(xtr, ytr, epochs=8, batch_size=32, optimizer=optim.Adam(model.parameters(), lr=1e-2),
                        validation_data=(xte, yte), seed=0, verbose=0)
    assert capsys.readouterr() == ("", "")  # verbose=0 is quiet
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] / 5
    accuracy = float((model.predict(xte) == yte).mean())
    assert accuracy >= 0.97, accuracy
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    proba = model.predict_proba(xte[:50], batch_size=7)
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(proba.argmax(axis=1), model.predict(xte[:50]))
    assert model.training  # predict restores the mode


def test_fit_is_reproducible_and_verbose_2_prints(digits, capsys):
    xtr, ytr = digits[0][:96], digits[1][:96]
    runs = []
    for _ in range(2):
        nn.manual_seed(5)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        runs.append(model.fit(xtr, ytr, epochs=2, batch_size=16, optimizer=optim.SGD(model.parameters(), lr=0.1,
                                                                                          momentum=0.9),
                              seed=3, verbose=2))
    assert runs[0] == runs[1]
    out = capsys.readouterr().out
    assert out.count("epoch 2/2: loss=") == 2


def test_binary_and_regression_targets(rng):
    x = rng.standard_normal((64, 3)).astype(np.float32)
    yb = (x[:, :1] > 0).astype(np.float32)
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1))
    h = model.fit(x, yb, epochs=30, batch_size=16, loss=nn.BCEWithLogitsLoss(),
                  optimizer=optim.Adam(model.parameters(), lr=0.05), verbose=0, seed=0)
    assert h["accuracy"][-1] > 0.9
    proba = model.predict_proba(x)
    assert proba.shape == (64, 2) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(model.predict(x), (proba[:, 1] > 0.5).astype(np.int64))
    yr = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]
    reg = nn.Linear(3, 1)
    h = reg.fit(x, yr, epochs=40, batch_size=16, optimizer=optim.Adam(reg.parameters(), lr=0.05), verbose=0, seed=0)
    assert set(h) == {"loss"} and h["loss"][-1] < 0.05 * h["loss"][0]


def test_fit_and_predict_errors(rng):
    model = nn.Linear(3, 2)
    x = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, np.zeros(9, np.int64), epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.fit(x, np.zeros(10, np.int64), epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        model.fit(x, np.zeros(10, np.int64), epochs=1, batch_size=4, verbose=3)
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        model.fit(x, np.zeros(10, np.int64), epochs=1, batch_size=4, validation_data=x)
    with pytest.raises(ValueError, match="x is empty"):
        model.predict(np.zeros((0, 3)))
    assert model.predict(x, batch_size=3).shape == (10,)  # float64 x is cast to the model's float32
