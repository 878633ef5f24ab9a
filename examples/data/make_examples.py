"""Writes the example files the README's commands use, from data bundled with
scikit-learn or from a stated formula. Run from the repository root:

    python examples/data/make_examples.py

- digits_0_4.npz, digits_5_9.npz: scikit-learn's 8x8 digits (Alpaydin & Kaynak 1998,
  UCI), split by label: x (n, 8, 8, 1) uint8 in 0-255 (the 0-16 ink levels scaled),
  y int64 (0-4; 5-9 renumbered 0-4),
  for the transfer-learning example.
- flowers.csv, rows.csv: the first rows of each iris species (Fisher 1936, as bundled
  by scikit-learn), features only, for `zoo predict` on an iris model.
- digit.png: scikit-learn's fourth 8x8 digit (a 3), its ink scaled to 0-255 and enlarged to 20x20
  in a 28x28 image as MNIST centres its digits, for `zoo predict lenet5.mnist --input`.
- houses.csv: SYNTHETIC house prices, 600 rows, seed 0: price = 50,000 + 1,800 * area_m2
  + 12,000 * rooms - 900 * age_years + 25,000 * (garage) + noise (sd 20,000); a
  regression CSV with targets of a few hundred thousand, for the SGD example.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_iris

HERE = Path(__file__).resolve().parent


def digits() -> None:
    data = load_digits()
    x = (data.images * 255 / 16).round().astype("uint8")[..., None]
    y = data.target.astype("int64")
    low = y < 5
    np.savez_compressed(HERE / "digits_0_4.npz", x=x[low], y=y[low])
    np.savez_compressed(HERE / "digits_5_9.npz", x=x[~low], y=y[~low] - 5)


def digit(index: int = 3) -> None:
    from PIL import Image

    ink = Image.fromarray((load_digits().images[index] * 255 / 16).round().astype("uint8"))
    canvas = Image.new("L", (28, 28))
    canvas.paste(ink.resize((20, 20), Image.BILINEAR), (4, 4))
    canvas.save(HERE / "digit.png")


def iris() -> None:
    data = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    picks = {"flowers.csv": [0, 1, 50, 51, 100, 101], "rows.csv": [2, 52, 102]}
    for file, rows in picks.items():
        with open(HERE / file, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            w.writerows([[float(v) for v in data.data[i]] for i in rows])


def houses(n: int = 600) -> None:
    rng = np.random.default_rng(0)
    area = rng.uniform(40, 220, n).round(1)
    rooms = rng.integers(1, 7, n)
    age = rng.integers(0, 80, n)
    garage = rng.integers(0, 2, n)
    price = 50_000 + 1_800 * area + 12_000 * rooms - 900 * age + 25_000 * garage + rng.normal(0, 20_000, n)
    with open(HERE / "houses.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["area_m2", "rooms", "age_years", "garage", "price"])
        w.writerows(zip(area, rooms, age, garage, price.round(0).astype(int)))


if __name__ == "__main__":
    digits()
    digit()
    iris()
    houses()
    print(f"wrote {', '.join(sorted(p.name for p in HERE.iterdir() if p.suffix in ('.csv', '.npz', '.png')))} in {HERE}")
