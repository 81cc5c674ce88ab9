"""Train a small CNN on scikit-learn's handwritten digits (8x8 images, 10 classes) with medconv,
then print the test accuracy and the probability of a few predictions.

    python examples/train_digits.py [--epochs 10] [--save digits.safetensors]
"""
import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import medconv.nn as nn
from medconv import optim


def build_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 4 x 4
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 2 x 2
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the trained model to this .safetensors file")
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8), values in [0, 1]
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)

    nn.manual_seed(args.seed)
    model = build_model()
    print(model)
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              optimizer=optim.Adam(model.parameters(), lr=1e-2), loss=nn.CrossEntropyLoss(),
              validation_data=(x_test, y_test), seed=args.seed, verbose=1)

    accuracy = float((model.predict(x_test) == y_test).mean())
    print(f"\ntest accuracy: {accuracy:.4f} ({len(y_test)} images)")

    proba = model.predict_proba(x_test[:8])
    for i, p in enumerate(proba):
        label = int(p.argmax())
        mark = "ok" if label == y_test[i] else f"wrong, true {y_test[i]}"
        print(f"image {i}: predicted {label} with probability {p[label]:.3f} ({mark})")

    if args.save:
        nn.save(model, args.save)
        reloaded = nn.load(args.save)
        assert np.array_equal(reloaded.predict(x_test), model.predict(x_test))
        print(f"saved to {args.save}")


if __name__ == "__main__":
    main()
