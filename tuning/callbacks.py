"""Keras callbacks of the tuner's trials (imports Keras: load lazily)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import keras


class MedianStopping(keras.callbacks.Callback):
    """Stop a trial whose objective is worse than the median of finished trials.

    After each epoch `e` (from `grace_epochs` on), the trial's best objective so
    far is compared with the median of the best-so-far values of the reference
    curves (finished trials' per-epoch objective) at the same epoch; when at
    least `min_trials` curves reach that epoch and the trial is worse, training
    stops (Vizier's median stopping rule, Golovin et al. 2017). Epochs are
    counted from the start of the model's training, so a Hyperband trial that
    continues another one is compared at its true epoch.
    """

    def __init__(self, objective: str, direction: str, reference: Sequence[Sequence[float]], *,
                 min_trials: int = 3, grace_epochs: int = 1, start_curve: Sequence[float] = ()) -> None:
        super().__init__()
        if direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
        self.objective, self.direction = objective, direction
        self.reference = [list(c) for c in reference if len(c)]
        self.min_trials, self.grace_epochs = int(min_trials), int(grace_epochs)
        self.curve: list[float] = list(start_curve)
        self.stopped_epoch: int | None = None  # 1-based epoch after which training stopped
        self.median_at_stop: float | None = None

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b

    def _best_so_far(self, curve: Sequence[float], upto: int) -> float:
        values = [v for v in curve[:upto] if v == v]  # ignore NaN
        if not values:
            return float("inf") if self.direction == "min" else float("-inf")
        return min(values) if self.direction == "min" else max(values)

    def median_at(self, epoch: int) -> float | None:
        """Median best-so-far of the reference curves after `epoch` (1-based) epochs,
        or None when fewer than `min_trials` curves reach it."""
        refs = [self._best_so_far(c, epoch) for c in self.reference if len(c) >= epoch]
        return statistics.median(refs) if len(refs) >= self.min_trials else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.objective)
        if value is None:
            return
        self.curve.append(float(value))
        done = len(self.curve)
        if done < self.grace_epochs:
            return
        median = self.median_at(done)
        if median is None:
            return
        if self._better(median, self._best_so_far(self.curve, done)):
            self.model.stop_training = True
            self.stopped_epoch = done
            self.median_at_stop = median


class ObjectiveLogger(keras.callbacks.Callback):
    """Adds each function objective's value to an epoch's logs (as
    `objective.fn(logs)` under its name), before the callbacks that read them
    (early stopping, the CSV log, the median rule) run."""

    def __init__(self, objectives: Sequence) -> None:
        super().__init__()
        self.objectives = list(objectives)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        for objective in self.objectives:
            logs[objective.name] = float(objective.fn(dict(logs)))
