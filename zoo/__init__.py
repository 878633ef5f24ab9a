"""keras-zoo: the textbook's neural-network families as plugins, trainable,
tunable, exportable and servable with one command.

The functions here import TensorFlow only when they need it, so `import zoo`
and listing models stay fast.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import PluginError, ZooError
from zoo.registry import get_spec, list_models
from zoo.spec import DataSpec, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "DataSpec", "ModelSpec", "PluginError", "ZooError",
    "build", "export", "get_spec", "list_models", "load_dataset", "train", "tune",
]


def build(name: str, *, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
          num_targets: int | None = None, task: str | None = None, weights: str | None = None,
          partial: bool = False, data_dir: str | None = None, **hyperparameters: Any):
    """Build model `name` for examples of `input_shape` (uncompiled keras.Model).

    Give `num_classes` for classification or `num_targets` for regression;
    hyperparameters override the spec's defaults. `weights` loads a weight preset
    ("imagenet", or "resnet50.imagenet") or a weights file (keras.applications' .h5,
    a .weights.h5, a .keras model, a run directory); with a preset, input_shape and
    num_classes default to its data's, and its layout (e.g. conv_bias) is forced.
    Loading fewer than half of the weight layers is an error unless `partial`.
    """
    spec = get_spec(name)
    if task is None:
        task = "classification" if num_classes else "regression" if num_targets else spec.tasks[0]
    data_spec = None if input_shape is None else DataSpec(
        name="user", task=task, input_shape=tuple(input_shape), num_classes=num_classes, num_targets=num_targets)
    if weights is not None:
        from zoo import presets

        if data_spec is not None:
            spec.check_data(data_spec)
        return presets.build(spec, weights, data_spec=data_spec, partial=partial, data_dir=data_dir, **hyperparameters)
    if data_spec is None:
        raise ZooError("build needs input_shape (or weights whose preset says it)")
    spec.check_data(data_spec)
    from zoo.training import build_model

    return build_model(spec, spec.resolve(hyperparameters), data_spec)


def load_dataset(name: str, **options: Any):
    """Load a dataset by name or URI; see zoo.data.load."""
    from zoo.data import load

    return load(name, **options)


def train(model: str, dataset: Any = None, **options: Any):
    """Train `model` on `dataset` (name, URI or zoo.data.Dataset); see zoo.training.train."""
    from zoo.training import train as _train

    return _train(model, dataset, **options)


def tune(model: str, dataset: Any = None, **options: Any):
    """Search `model`'s hyperparameters on `dataset` with Keras-Tuner; see
    zoo.tuning.sweep.tune. (The one place zoo reaches zoo.tuning: lazily, at
    call time, so that `zoo.tune` sits beside `zoo.train`.)"""
    from zoo.tuning import tune as _tune

    return _tune(model, dataset, **options)


def __getattr__(name: str) -> Any:
    """`zoo.export(run, **options)`: the zoo.export module, imported on first use
    and callable as zoo.export.export_run (a function named `export` here would be
    replaced by the submodule as soon as anything imports zoo.export)."""
    if name == "export":
        import importlib

        return importlib.import_module("zoo.export")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
