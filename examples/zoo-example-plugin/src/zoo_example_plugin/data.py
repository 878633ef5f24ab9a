"""A dataset plugin: `waves`, one second of a noisy periodic signal sampled 64
times, labelled by its shape (sine, square or sawtooth). Synthetic and offline."""

from __future__ import annotations

import numpy as np

from zoo.data import Raw
from zoo.spec import DatasetSource

SHAPES = ("sine", "square", "sawtooth")


def read_waves(n: int = 900, steps: int = 64, noise: float = 0.3, seed: int = 0, **options) -> Raw:
    """`n` signals of `steps` samples (a sequence of one feature), a third of each
    shape, random frequency (1-4 Hz), phase and amplitude, Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, steps, endpoint=False)
    y = np.arange(n) % len(SHAPES)
    freq = rng.uniform(1.0, 4.0, size=(n, 1))
    phase = rng.uniform(0.0, 1.0, size=(n, 1))
    cycles = freq * t + phase
    waves = {0: np.sin(2 * np.pi * cycles), 1: np.sign(np.sin(2 * np.pi * cycles)), 2: 2 * (cycles % 1.0) - 1}
    x = np.select([y[:, None] == k for k in waves], list(waves.values()))
    x = x * rng.uniform(0.5, 2.0, size=(n, 1)) + rng.normal(0.0, noise, size=x.shape)
    return Raw(x[..., None].astype("float32"), y.astype("int64"), "classification", "sequence", SHAPES)


waves = DatasetSource(name="waves", summary="noisy sine, square and sawtooth waves, 64 steps, 3 classes (offline)",
                      task="classification", read=read_waves)
