"""MNIST for the benchmarks: the four IDX files under ../shared/data/mnist (or --data-dir)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("ZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_mnist(data_dir: str | os.PathLike | None = None, *, binarize: bool = False, limit: int | None = None,
               test_limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) flattened to 784 and scaled to [0, 1]
    (or binarised at 0.5)."""
    from zoo.data.sources import read_idx_folder

    folder = Path(data_dir or DEFAULT_DATA) / "mnist"
    raw = read_idx_folder(folder, "mnist")
    if raw is None:
        raise SystemExit(f"MNIST IDX files not found under {folder}; pass --data-dir")
    xtr = raw.x.reshape(len(raw.x), -1).astype("float32") / 255.0
    xte = raw.test[0].reshape(len(raw.test[0]), -1).astype("float32") / 255.0
    if binarize:
        xtr, xte = (xtr > 0.5).astype("float32"), (xte > 0.5).astype("float32")
    ytr, yte = raw.y, raw.test[1]
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    if test_limit:
        xte, yte = xte[:test_limit], yte[:test_limit]
    return xtr, ytr, xte, yte
