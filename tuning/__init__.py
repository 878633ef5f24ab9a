"""Keras-Tuner integration: every registered model is searchable through the
search space its spec declares (`zoo tune`, `zoo.tune`, `zoo.tuning.tune`).

Importing this package does not import TensorFlow; `tune` does when it runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["tune", "report", "Sweep", "build_space"]


def tune(model: Any, dataset: Any = None, **options: Any):
    """Run (or resume) a sweep; see zoo.tuning.sweep.tune."""
    from zoo.tuning.sweep import tune as _tune

    return _tune(model, dataset, **options)


def report(sweep_dir: Any, **options: Any):
    """Rebuild a sweep's trials table and plots; see zoo.tuning.sweep.report."""
    from zoo.tuning.sweep import report as _report

    return _report(sweep_dir, **options)


def __getattr__(name: str) -> Any:
    if name == "Sweep":
        from zoo.tuning.sweep import Sweep

        return Sweep
    if name == "build_space":
        from zoo.tuning.space import build_space

        return build_space
    raise AttributeError(name)
