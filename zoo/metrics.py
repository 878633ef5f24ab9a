"""Metrics by name, for objectives and `--metrics`: any of these is compiled
into a model when a sweep's objective or a run asks for it.

The zoo's classifiers take integer labels and output probabilities (one sigmoid
column for two classes, a softmax row for more); Keras's AUC, F1 and
precision/recall want one-hot or float labels of the prediction's shape, so
`SparseLabels` adapts the labels and hands the rest to the Keras metric.
Multi-class precision, recall and F1 are macro averages over classes of
arg-max decisions; multi-class AUC is the macro average of one-vs-rest AUCs
(scikit-learn's roc_auc_score(multi_class="ovr")). Binary decisions threshold
the sigmoid at 0.5.

No TensorFlow at import: the Keras classes are built when first asked for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from zoo.errors import ZooError, did_you_mean

#: metrics each task reports without being asked (see zoo.training.loss_and_metrics)
TASK_METRICS = {"classification": ("accuracy",), "regression": ("mae", "rmse"), "reconstruction": ("mse",),
                "features": ()}
#: metrics that can be added by name, per task
EXTRA_METRICS = {
    "classification": ("auc", "precision", "recall", "f1", "top_k_accuracy", "topN_accuracy"),
    "regression": ("mse", "r2", "mape"),
    "reconstruction": ("mae",),
    "features": (),
}
#: larger is better for these; every other metric is an error or a loss
MAXIMISED = ("accuracy", "auc", "precision", "recall", "f1", "r2", "top_k_accuracy")
#: metric name -> Keras metric class, for the metrics that need no label adapter
PLAIN = {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "mape": "MeanAbsolutePercentageError",
         "r2": "R2Score"}
_TOP_N = re.compile(r"^top(\d+)_accuracy$")


def direction(name: str) -> str | None:
    """min or max for a metric name (with or without val_), None when unknown."""
    base = name.removeprefix("val_")
    if base in MAXIMISED or _TOP_N.match(base) or base in ("acc", "binary_accuracy", "categorical_accuracy",
                                                            "sparse_categorical_accuracy", "f1_score", "r2_score"):
        return "max"
    if base in ("loss", "mse", "mae", "rmse", "mape", "msle", "huber", "crossentropy", "hinge", "mean_squared_error",
                "mean_absolute_error", "root_mean_squared_error", "reconstruction_error"):
        return "min"
    return None


def available(task: str) -> list[str]:
    """Every metric name a model of `task` can report (compiled or on request)."""
    return ["loss", *TASK_METRICS.get(task, ()), *(m for m in EXTRA_METRICS.get(task, ()) if m != "topN_accuracy")]


def check(names: Sequence[str], task: str) -> list[str]:
    """The names (without val_) that need compiling; a ZooError for a name this task cannot report."""
    extra = []
    known = available(task)
    for name in names:
        if name in known[: 1 + len(TASK_METRICS.get(task, ()))]:
            continue
        if name in EXTRA_METRICS.get(task, ()) or (task == "classification" and _TOP_N.match(name)):
            extra.append(name)
            continue
        raise ZooError(f"metric {name!r} is not one a {task} model can report." + did_you_mean(name, known)
                       + f" Known: {', '.join(known)} (and top<N>_accuracy for classifiers)."
                       if task == "classification" else
                       f"metric {name!r} is not one a {task} model can report." + did_you_mean(name, known)
                       + f" Known: {', '.join(known)}.")
    return extra


def build(names: Sequence[str], task: str, num_classes: int | None) -> list[Any]:
    """Keras metric objects for `names` (as `check` returns them)."""
    import keras

    SparseLabels, MacroAverage, _ = register()
    binary = num_classes == 2
    out = []
    for name in names:
        if name == "auc":
            metric = keras.metrics.AUC(name="auc") if binary else keras.metrics.AUC(
                name="auc", multi_label=True, num_labels=num_classes)
        elif name in ("precision", "recall"):
            cls = keras.metrics.Precision if name == "precision" else keras.metrics.Recall
            metric = cls(name=name) if binary else MacroAverage(
                [cls(top_k=1, class_id=k, name=f"{name}_{k}") for k in range(num_classes)], name=name)
        elif name == "f1":
            metric = keras.metrics.F1Score(threshold=0.5, name="f1") if binary else keras.metrics.F1Score(
                average="macro", name="f1")
        elif name == "top_k_accuracy" or _TOP_N.match(name):
            k = 5 if name == "top_k_accuracy" else int(_TOP_N.match(name).group(1))
            out.append(keras.metrics.SparseTopKCategoricalAccuracy(k=k, name=name))
            continue
        elif name in PLAIN:  # metrics of the predictions against the targets as they are
            out.append(getattr(keras.metrics, PLAIN[name])(name=name))
            continue
        else:
            raise ZooError(f"no metric named {name!r}")
        out.append(SparseLabels(metric, num_classes, name=name))
    return out


_CLASSES: tuple = ()


def standardised_loss(loss: str, std):
    """A regression loss computed on standardised targets (divided by the training
    split's standard deviation): its gradients do not grow with the targets' units,
    so SGD on raw house prices does not diverge, while the model and its metrics
    stay in the targets' own units."""
    return register()[2](loss, [float(s) for s in std])


def register() -> tuple:
    """Define (once) and register the zoo's Keras metric and loss classes, so that
    a saved model compiled with them reloads; returns (SparseLabels, MacroAverage,
    StandardisedLoss)."""
    global _CLASSES
    if not _CLASSES:
        _CLASSES = _keras_metric_classes()
    return _CLASSES


def _keras_metric_classes() -> tuple:
    import keras

    @keras.saving.register_keras_serializable(package="zoo")
    class SparseLabels(keras.metrics.Metric):
        """A Keras metric that wants labels shaped like the predictions, fed
        integer class labels: one-hot for several classes, a float column for two."""

        def __init__(self, metric, num_classes, name=None, **kwargs):
            super().__init__(name=name or metric.name, **kwargs)
            self.metric = keras.metrics.deserialize(metric) if isinstance(metric, dict) else metric
            self.num_classes = int(num_classes)

        def update_state(self, y_true, y_pred, sample_weight=None):
            ops = keras.ops
            y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            if self.num_classes == 2:
                y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1))
            else:
                y_true = ops.one_hot(y_true, self.num_classes, dtype=y_pred.dtype)
            self.metric.update_state(y_true, y_pred, sample_weight=sample_weight)

        def result(self):
            return self.metric.result()

        def reset_state(self):
            self.metric.reset_state()

        def get_config(self):
            return {"name": self.name, "num_classes": self.num_classes,
                    "metric": keras.metrics.serialize(self.metric)}

    @keras.saving.register_keras_serializable(package="zoo")
    class MacroAverage(keras.metrics.Metric):
        """The mean of several metrics (one per class): a macro average."""

        def __init__(self, metrics, name=None, **kwargs):
            super().__init__(name=name, **kwargs)
            self.parts = [keras.metrics.deserialize(m) if isinstance(m, dict) else m for m in metrics]

        def update_state(self, y_true, y_pred, sample_weight=None):
            for m in self.parts:
                m.update_state(y_true, y_pred, sample_weight=sample_weight)

        def result(self):
            return keras.ops.mean(keras.ops.stack([m.result() for m in self.parts]))

        def reset_state(self):
            for m in self.parts:
                m.reset_state()

        def get_config(self):
            return {"name": self.name, "metrics": [keras.metrics.serialize(m) for m in self.parts]}

    @keras.saving.register_keras_serializable(package="zoo")
    class StandardisedLoss(keras.losses.Loss):
        """mse, mae or huber on targets and predictions divided by `std`."""

        FUNCTIONS = {"mse": keras.losses.mean_squared_error, "mae": keras.losses.mean_absolute_error,
                     "huber": keras.losses.huber}

        def __init__(self, loss="mse", std=(1.0,), name=None, **kwargs):
            super().__init__(name=name or f"standardised_{loss}", **kwargs)
            if loss not in self.FUNCTIONS:
                raise ValueError(f"no standardised loss {loss!r}")
            self.loss, self.std = loss, [float(v) for v in std]

        def call(self, y_true, y_pred):
            scale = keras.ops.convert_to_tensor(self.std, dtype=y_pred.dtype)
            return self.FUNCTIONS[self.loss](keras.ops.cast(y_true, y_pred.dtype) / scale, y_pred / scale)

        def get_config(self):
            return {"loss": self.loss, "std": self.std, "name": self.name}

    return SparseLabels, MacroAverage, StandardisedLoss
