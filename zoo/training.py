"""The one training path: build, compile, Keras `fit` with callbacks, evaluate,
and write a run directory. Used by the CLI, the Python API and the tuner.

A run directory holds:
    config.json          model, dataset, hyperparameters, seed, data spec, versions
    history.csv / .json  per-epoch metrics (CSVLogger, then the final history)
    metrics.json         test metrics, a naive baseline, status
    model.keras          the trained model (best epoch's weights)
    checkpoint.keras     the best model so far, written during training (within the
                         write budget of zoo.callbacks)
    learning_curves.png  loss and metric, train vs validation
    confusion_matrix.png / .json, misclassified.png, filters.png
                         image classifiers only (zoo.diagnostics, a REPORTS hook)
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import files
from zoo.data import Dataset
from zoo.data import check as check_dataset
from zoo.data import load as load_dataset
from zoo.errors import ZooError, did_you_mean
from zoo.registry import get_spec
from zoo.spec import UNSUPERVISED_TASKS, DataSpec, ModelSpec

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "sdlm")
#: the learning rate `auto` gives each optimizer: Keras's own default, but 0.01 for
#: Adagrad (Duchi et al. 2011, Keras 2) and 1.0 for Adadelta (Zeiler 2012's method has
#: no learning rate: 1.0 applies its update as the paper defines it); SDLM's is LeCun
#: et al. 1998's first rate (zoo.optimizers.SDLM)
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "rmsprop": 0.001,
                          "adadelta": 1.0, "adam": 0.001, "sdlm": 5e-4}
LOSSES = {
    "classification": ("auto", "crossentropy", "hinge"),
    "regression": ("auto", "mse", "mae", "huber"),
    "reconstruction": ("auto", "mse", "mae", "crossentropy"),
}
#: hooks run after training that add files to the run directory: fn(run) -> None
REPORTS: list[Callable[["Run"], None]] = []


@dataclass
class Run:
    """A finished (or loaded) training run and its directory. `model` is the
    trained Keras model, which takes PREPROCESSED inputs (`expects()` says how);
    `predict(raw)` answers for raw inputs, as the export does."""

    dir: Path
    config: dict[str, Any]
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    model: Any = None
    dataset: Dataset | None = field(default=None, repr=False)

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.config["model"])

    @property
    def data_spec(self) -> DataSpec:
        return DataSpec.from_json(self.config["data_spec"])

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.config["hyperparameters"]

    def predict(self, raw: Any, batch_size: int = 1024) -> dict[str, Any]:
        """The model's answer for RAW inputs (as the dataset gives them: features in
        their own units, pixels 0-255), with the run's preprocessing applied, as the
        exported SavedModel answers: {"probabilities", "class_ids", "classes"} for a
        classifier, {"predictions"} for regression, {"reconstruction"} ... `run.model`
        itself expects preprocessed inputs (see `expects()`)."""
        import numpy as np

        from zoo.export import reference_outputs

        if self.model is None:
            raise ZooError("this run was loaded without its model (Run.load(..., with_model=True))")
        x = np.asarray(raw, dtype=object if self.data_spec.input_kind == "text" else None)
        if x.dtype.kind in "biuf":
            x = x.astype("float32")
        if x.ndim == len(self.data_spec.input_shape):  # one example
            x = x[None]
        task = self.config.get("task", self.data_spec.task)
        parts = [reference_outputs(self.model, self.data_spec, task, x[i:i + batch_size])
                 for i in range(0, len(x), batch_size)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if "class_ids" in out and self.data_spec.class_names:
            out["classes"] = [self.data_spec.class_names[int(i)] for i in out["class_ids"]]
        return out

    def expects(self) -> str:
        """What `run.model` (model.keras) takes, in words: the preprocessing it was
        trained behind, which `run.predict` and the export apply to raw inputs."""
        spec = self.data_spec
        p = spec.preprocessing
        shape = tuple(spec.input_shape)
        kind = p.get("type", "none")
        if kind == "standardize":
            how = ("standardised features: (x - mean) / std with the training split's statistics "
                   "(config.json data_spec.preprocessing)")
        elif kind == "rescale":
            how = f"pixels scaled by {p['scale']:.6g} (0-255 raw pixels become 0-1)"
        elif kind == "text":
            how = "raw strings (the model vectorises them itself)"
        else:
            how = "the raw inputs, unchanged"
        return (f"model.keras takes inputs of shape (batch, {', '.join(map(str, shape))}): {how}. "
                f"run.predict(raw), `zoo predict` and the export take raw inputs and apply this themselves.")

    def verdict(self) -> dict[str, Any] | None:
        """The test figure against the baseline that ignores the inputs:
        {"metric", "value", "baseline", "baseline_name", "beats"}; None without one."""
        m = self.metrics
        kind = {"last_value": "repeating the last value seen"}.get(m.get("baseline"), None)
        for metric, higher, what in (("accuracy", True, "the majority class"), ("mae", False, "the training mean"),
                                     ("mse", False, "the mean training input")):
            value, base = m.get(f"test_{metric}"), m.get(f"baseline_test_{metric}")
            if isinstance(value, float) and isinstance(base, float):
                beats = value > base if higher else value < base
                return {"metric": f"test_{metric}", "value": value, "baseline": base, "baseline_name": kind or what,
                        "beats": beats}
        return None

    def summary(self) -> str:
        """What a learner wants to read after training: the test figures beside the
        baseline, which epoch the model kept, and a warning when it learned nothing
        the baseline does not know."""
        m = self.metrics
        lines = [f"run directory: {self.dir}"]
        if "loaded" in (self.config.get("transfer") or {}):  # runs before the report have only copied/fresh
            from zoo.transfer import Transfer

            t = self.config["transfer"]
            lines.append(Transfer(t["from"], t.get("freeze"), t.get("loaded", []), t.get("skipped", []),
                                  t.get("replaced", []), t.get("frozen", [])).summary())
        verdict = self.verdict()
        for key, value in m.items():
            if not key.startswith("test_") or not isinstance(value, float):
                continue
            note = ""
            if verdict and key == verdict["metric"]:
                note = f"   baseline {verdict['baseline']:.4f} ({verdict['baseline_name']})"
            lines.append(f"  {key:24} {value:.4f}{note}")
        kept = m.get("monitor") or {}
        epochs = f"  {'epochs':24} {m.get('epochs_run')} of {self.hyperparameters.get('epochs')}"
        if kept.get("restored"):
            epochs += (f"; early stopping kept epoch {kept['kept_epoch']} (best {kept['metric']} "
                       f"{kept['best']:.4f}), not the last")
        elif "kept_epoch" in kept:
            epochs += f"; the model is the last epoch's ({kept['kept_epoch']})"
        lines.append(epochs)
        lines.append(f"  {'train seconds':24} {m.get('train_seconds', 0):.1f}")
        for key, value in m.items():  # figures of their own, e.g. robustness under attack
            if isinstance(value, dict) and key != "monitor":
                lines += [f"  {key + '.' + k:32} {v:.4f}" if isinstance(v, float) else f"  {key + '.' + k:32} {v}"
                          for k, v in value.items()]
        if verdict and not verdict["beats"]:
            lines.append(f"warning: {verdict['metric']} {verdict['value']:.4f} is no better than the baseline "
                         f"{verdict['baseline']:.4f} ({verdict['baseline_name']}): the model learned nothing that "
                         "ignoring the inputs does not. Try more epochs or another learning rate (zoo lr-find).")
        return "\n".join(lines)

    @classmethod
    def load(cls, run_dir: str | Path, *, with_model: bool = True) -> "Run":
        """Reopen a run directory (the model too, unless `with_model=False`)."""
        d = Path(run_dir)
        config, metrics, history = (_read_run_json(d / name) for name in ("config.json", "metrics.json",
                                                                             "history.json"))
        model = None
        if with_model:
            path = d / "model.keras"
            if not path.is_file():
                raise ZooError(f"{str(d)!r} is not a finished run directory (missing model.keras)")
            model = load_keras_model(path, model_name=config["model"])
        return cls(d, config, history, metrics, model)


def load_keras_model(path: str | Path, *, model_name: str | None = None, compile: bool = True):
    """A saved .keras model, with every Keras class it may need imported first: the
    zoo's metrics and optimizers, and the keras_modules of the spec that built it
    (of every installed spec when that is not known). Every path that loads a
    model (Run.load, transfer, export) comes here. A ZooError says what is wrong."""
    import importlib

    import keras

    from zoo import metrics as zoo_metrics
    from zoo import registry

    zoo_metrics.register()  # metric classes a model compiled for an objective may name
    importlib.import_module("zoo.optimizers")  # and the zoo's optimizers (SDLM, ScheduledSGD)
    specs = [get_spec(model_name)] if model_name else registry.load_all()[0]  # import the plugin, then
    for module in dict.fromkeys(m for spec in specs for m in spec.keras_modules):  # its Keras classes' modules
        importlib.import_module(module)
    path = Path(path)
    try:
        return keras.saving.load_model(path, compile=compile)
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        if not zipfile.is_zipfile(path):  # Keras says "File not found" for a file that exists
            raise ZooError(f"{path} is damaged ({path.stat().st_size} bytes, not a Keras archive)") from None
        raise ZooError(f"cannot load {path}: {unregistered_class(exc) or exc}") from None


def unregistered_class(exc: BaseException) -> str | None:
    """What to do when Keras cannot find a saved model's class, in one line (Keras's
    own message carries the model's whole config)."""
    found = re.search(r"Could not locate (?:class|function) '([^']+)'", str(exc))
    if not found:
        return None
    return (f"the model uses a Keras class {found.group(1)!r} that is not registered: decorate it with "
            "@keras.saving.register_keras_serializable(package=...) and name its module in the spec's keras_modules")


def _read_run_json(path: Path) -> Any:
    """One of a run directory's JSON files, or a ZooError naming what is wrong with it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ZooError(f"{str(path.parent)!r} is not a finished run directory (missing {path.name})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZooError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None


# --- reproducibility -------------------------------------------------------------


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (unless
    `deterministic=False`: Keras compiles nothing with XLA under op determinism)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # TensorFlow has no public API to turn it off again
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()


# --- build and compile -----------------------------------------------------------


def build_model(spec: ModelSpec, hp: Mapping[str, Any], data_spec: DataSpec):
    """spec.build with its failures turned into clear user errors."""
    import keras

    try:
        model = spec.build(dict(hp), data_spec)
    except ZooError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ZooError(f"model {spec.name!r} cannot be built with these hyperparameters on "
                       f"{data_spec.name!r} (input {data_spec.input_shape}): {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise ZooError(f"model {spec.name!r}: build returned {type(model).__name__}, not a keras.Model")
    if getattr(model, "compiled", False):
        raise ZooError(f"model {spec.name!r}: build returned a compiled model; the zoo compiles it with the task's "
                       "loss and metrics and the run's optimizer, which would replace yours: remove model.compile "
                       "from build (a custom loss goes in the spec's compile_args)")
    last = model.layers[-1] if model.layers else None
    if (data_spec.task == "classification" and data_spec.task in spec.tasks and isinstance(last, keras.layers.Dense)
            and getattr(last.activation, "__name__", "") == "linear"):
        raise ZooError(f"model {spec.name!r} ends in a linear Dense layer {last.name!r}: a classifier must output "
                       "probabilities (softmax, or sigmoid for two classes) for the zoo's cross-entropy; end it with "
                       "zoo.layers.output_head(x, data_spec)")
    return model


def learning_rate(hp: Mapping[str, Any]) -> float:
    """The learning rate of `hp`: its number, or the optimizer's default for `auto`."""
    name = hp["optimizer"]
    if name not in OPTIMIZERS:
        raise ZooError(f"unknown optimizer {name!r}." + did_you_mean(name, OPTIMIZERS) + f" Known: {', '.join(OPTIMIZERS)}.")
    return DEFAULT_LEARNING_RATES[name] if hp["learning_rate"] == "auto" else float(hp["learning_rate"])


def resolve_hyperparameters(spec: ModelSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's defaults with `overrides`, the learning rate made a number. A
    family's own default rate belongs to its own optimizer: choosing another
    optimizer without a rate gives that optimizer's default rate."""
    hp = spec.resolve(overrides)
    if "learning_rate" not in overrides and hp["optimizer"] != spec.hyperparameters()["optimizer"]:
        hp["learning_rate"] = "auto"
    hp["learning_rate"] = learning_rate(hp)
    return hp


def learning_rate_schedule(hp: Mapping[str, Any], steps_per_epoch: int):
    """The learning rate of `hp` as Keras takes it: a number (constant), or a Keras
    schedule: linear decay to final_lr_fraction, or steps (the base rate times
    lr_factors[i] after lr_boundaries[i - 1] epochs, as the papers' step schedules)."""
    import keras

    lr = learning_rate(hp)
    if not lr > 0:
        raise ZooError(f"learning rate must be positive, got {lr}")
    kind = hp["lr_schedule"]
    if kind == "linear":
        steps = max(1, int(hp["epochs"]) * steps_per_epoch)
        return keras.optimizers.schedules.PolynomialDecay(lr, steps, lr * float(hp["final_lr_fraction"]), power=1.0)
    if kind == "step":
        boundaries, factors = [int(b) for b in hp["lr_boundaries"]], [float(f) for f in hp["lr_factors"]]
        if not boundaries or len(factors) != len(boundaries) + 1 or boundaries != sorted(boundaries):
            raise ZooError("lr_schedule step needs increasing lr_boundaries (epochs) and one more lr_factors, e.g. "
                           "--set lr_boundaries=91,136 --set lr_factors=1,0.1,0.01")
        return keras.optimizers.schedules.PiecewiseConstantDecay([b * steps_per_epoch for b in boundaries],
                                                                 [lr * f for f in factors])
    if kind != "constant":
        raise ZooError(f"unknown lr_schedule {kind!r}; use constant, linear or step")
    return lr


def make_optimizer(hp: Mapping[str, Any], steps_per_epoch: int):
    """An optimizer by name, with the learning rate schedule of `hp`; momentum
    optimizers follow `final_momentum` after `momentum_epochs` when `hp` has them
    (zoo.optimizers.ScheduledSGD), `sdlm` is zoo.optimizers.SDLM."""
    import keras

    from zoo import optimizers

    name, lr = hp["optimizer"], learning_rate_schedule(hp, steps_per_epoch)
    if name in ("sgd", "momentum", "nesterov"):
        momentum = 0.0 if name == "sgd" else float(hp.get("momentum", 0.9))
        if name == "momentum" and int(hp.get("momentum_epochs", 0) or 0) > 0:
            return optimizers.ScheduledSGD(lr, momentum=momentum, final_momentum=float(hp["final_momentum"]),
                                           switch_step=int(hp["momentum_epochs"]) * steps_per_epoch)
        return keras.optimizers.SGD(lr, momentum=momentum, nesterov=name == "nesterov")
    if name == "sdlm":
        return optimizers.SDLM(lr, mu=float(hp.get("sdlm_mu", 0.02)), batch_size=int(hp["batch_size"]),
                               curvature=sdlm_curvature(hp))
    return {"adagrad": keras.optimizers.Adagrad, "rmsprop": keras.optimizers.RMSprop,
            "adadelta": keras.optimizers.Adadelta, "adam": keras.optimizers.Adam}[name](lr)


def sdlm_curvature(hp: Mapping[str, Any]) -> str:
    """SDLM's curvature (zoo.optimizers.CURVATURES); gauss-newton is for sdlm only."""
    from zoo.optimizers import CURVATURES

    curvature = hp.get("sdlm_curvature", "fisher")
    if curvature not in CURVATURES:
        raise ZooError(f"sdlm_curvature must be one of {', '.join(CURVATURES)}, got {curvature!r}")
    if curvature == "gauss-newton" and hp["optimizer"] != "sdlm":
        raise ZooError("sdlm_curvature=gauss-newton is SDLM's (per-example updates); use --optimizer sdlm")
    return curvature


def per_example(hp: Mapping[str, Any]) -> bool:
    """Whether training updates after every example (the paper's SDLM, zoo.sdlm)."""
    return sdlm_curvature(hp) == "gauss-newton"


def task_for(spec: ModelSpec, data_spec: DataSpec) -> str:
    """What the model learns on this data: the data's task, or reconstruction."""
    if data_spec.task in spec.tasks:
        return data_spec.task
    return next(t for t in spec.tasks if t in UNSUPERVISED_TASKS)


def loss_and_metrics(task: str, data_spec: DataSpec, loss: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """compile() arguments for a task: the loss by name and the metrics to report,
    with the metrics named in `extra` (zoo.metrics: auc, f1, r2, ...) added."""
    args = _loss_and_task_metrics(task, data_spec, loss)
    if extra:
        from zoo import metrics as zoo_metrics

        added = zoo_metrics.check(extra, task)
        args["metrics"] = args["metrics"] + zoo_metrics.build(added, task, data_spec.num_classes)
    return args


def _loss_and_task_metrics(task: str, data_spec: DataSpec, loss: str) -> dict[str, Any]:
    import keras

    if loss not in LOSSES.get(task, ("auto",)):
        raise ZooError(f"loss {loss!r} does not fit a {task} task; use one of {', '.join(LOSSES.get(task, ('auto',)))}")
    if task == "classification":
        binary = data_spec.output_units == 1
        if loss == "hinge":
            fn = binary_hinge if binary else sparse_categorical_hinge
        else:
            fn = keras.losses.BinaryCrossentropy() if binary else keras.losses.SparseCategoricalCrossentropy()
        acc = keras.metrics.BinaryAccuracy(name="accuracy") if binary else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        return {"loss": fn, "metrics": [acc]}
    if task == "regression":
        stats = data_spec.preprocessing.get("target")
        name = "mse" if loss == "auto" else loss
        if stats:  # the loss on standardised targets; the model and the metrics in the targets' units
            from zoo.metrics import standardised_loss

            fn = standardised_loss(name, stats["std"])
        else:
            fn = {"mse": "mse", "mae": "mae", "huber": keras.losses.Huber()}[name]
        return {"loss": fn, "metrics": [keras.metrics.MeanAbsoluteError(name="mae"),
                                        keras.metrics.RootMeanSquaredError(name="rmse")]}
    fn = {"auto": "mse", "mse": "mse", "mae": "mae", "crossentropy": "binary_crossentropy"}.get(loss, "mse")
    return {"loss": fn, "metrics": [keras.metrics.MeanSquaredError(name="mse")]}


def scores(y_pred):
    """The raw scores (logits) behind a softmax or sigmoid output, for losses that are
    defined on scores (the hinge): the logits Keras keeps on the output tensor, as its
    cross-entropy uses them (TensorFlow backend), else recovered from the
    probabilities: log p for a softmax (the scores up to a constant per example,
    which a multi-class hinge ignores), the log-odds for a sigmoid."""
    import keras

    logits = getattr(y_pred, "_keras_logits", None)
    if logits is not None:
        return logits
    p = keras.ops.clip(y_pred, 1e-37, 1.0 - 1e-7)
    return keras.ops.log(p) - keras.ops.log1p(-p) if y_pred.shape[-1] == 1 else keras.ops.log(p)


def sparse_categorical_hinge(y_true, y_pred):
    """Crammer-Singer multi-class hinge max(0, 1 + max_{j != y} z_j - z_y) on the raw
    scores z, integer labels. (keras.losses.categorical_hinge takes the other classes'
    maximum as at least 0, which holds for probabilities only.)"""
    from keras import ops

    z = scores(y_pred)
    true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(z)[-1], dtype=z.dtype)
    other = ops.max(ops.where(true > 0, ops.full_like(z, float("-inf")), z), axis=-1)
    return ops.relu(1.0 + other - ops.sum(true * z, axis=-1))


def binary_hinge(y_true, y_pred):
    """The hinge max(0, 1 - t z) on the raw score z, labels 0/1 taken as t = -1/+1 (keras.losses.hinge)."""
    import keras

    return keras.losses.hinge(y_true, scores(y_pred))


def compile_model(model, spec: ModelSpec, hp: Mapping[str, Any], data_spec: DataSpec, steps_per_epoch: int,
                  jit_compile: bool | str = "auto", metrics: Sequence[str] = ()) -> None:
    task = task_for(spec, data_spec)
    args = loss_and_metrics(task, data_spec, hp["loss"], extra=metrics)
    if spec.compile_args is not None:
        args.update(spec.compile_args(hp, data_spec))
    model.compile(optimizer=make_optimizer(hp, steps_per_epoch), jit_compile=jit_compile, **args)


def build_and_compile(spec: ModelSpec, hp: Mapping[str, Any], data_spec: DataSpec, metrics: Sequence[str] = ()):
    """The model `train` fits: built from `hp` and compiled with the task's loss,
    metrics (and those named in `metrics`) and the optimizer/schedule of `hp`
    (shared with the tuner's trials). Per-example SDLM (sdlm_curvature=gauss-newton) trains
    only through `train`, which wraps the model for it: refused here."""
    if per_example(hp):
        raise ZooError("sdlm_curvature=gauss-newton (per-example SDLM) trains through zoo train only, not in sweeps "
                       "or the lab; use sdlm_curvature=fisher there")
    model = build_model(spec, hp, data_spec)
    steps = math.ceil(data_spec.sizes["train"] / int(hp["batch_size"]))
    compile_model(model, spec, hp, data_spec, steps_per_epoch=steps, metrics=metrics)
    return model


# --- the run ---------------------------------------------------------------------


def _run_dir(runs_dir: str | Path, model: str, dataset: str, run_name: str | None) -> Path:
    root = Path(runs_dir)
    if run_name:
        return root / run_name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.split(":", 1)[-1]).name or dataset)
    base = root / f"{model}-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    d, i = base, 1
    while d.exists():
        d, i = Path(f"{base}-{i}"), i + 1
    return d


def provenance(spec: ModelSpec, *, dataset_name: str | None = None, callbacks: Sequence[str] = ()) -> dict[str, Any]:
    """Which distribution (and version) supplied the model, the dataset and the
    callbacks of a run: its config.json and its export say so."""
    from zoo import registry
    from zoo.data import source

    def origin(reg, name):
        try:
            return reg.origin(name)
        except ZooError:  # a spec or dataset object given directly, not through a plugin
            return {"name": name, "distribution": None}

    out = {"model": origin(registry.models, spec.name)}
    if dataset_name:
        try:
            found, _ = source(dataset_name)
        except ZooError:
            found = None
        out["dataset"] = origin(registry.datasets, found.name) if found is not None else {
            "name": dataset_name, "distribution": "tensorflow-datasets or the data directory"}
    if callbacks:
        out["callbacks"] = [origin(registry.callbacks, c.split(":")[0]) for c in callbacks]
    return out


def has_own_train_step(model) -> bool:
    """Whether a Keras model overrides the train_step Keras gives every model."""
    import keras

    return type(model).train_step is not keras.Model.train_step


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("keras-zoo", "tensorflow", "keras", "keras-tuner", "tensorflow-datasets", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def training_callbacks(run_dir: Path, hp: Mapping[str, Any], *, tensorboard: bool = False, extra: Sequence[Any] = (),
                       checkpoint: bool = True, backup: bool = True, budgeted: bool = True,
                       monitor: str = "val_loss", mode: str = "auto", restore_best: bool = False,
                       first: Sequence[Any] = (), hparams: Mapping[str, Any] | None = None) -> list:
    """The callbacks of every training run: `first` (callbacks that add figures
    to an epoch's logs), NaN guard, CSV log, best-model checkpoint, backup for
    resuming, early stopping on `monitor` (val_loss by default; patience),
    TensorBoard, then `extra`. The tuner's trials use the same list, without the
    per-run checkpoint (it keeps only the best trial's model), monitoring the
    sweep's objective. With `restore_best`, the model ends with the weights of
    its best epoch by `monitor` even when early stopping is off (patience 0).

    The checkpoint and backup writes take at most ~1% of the training time
    (zoo.callbacks.WRITE_BUDGET) unless `budgeted=False`: under tf.distribute every
    worker must write at the same epochs, so there each epoch is written.

    On thread-safe backends (JAX, PyTorch) Keras runs batch-end hooks on a
    background thread only when every callback says it is `async_safe`;
    otherwise it copies each step's metrics to the host before dispatching the
    next step. Ours are safe (the checkpoint and backup act at epoch ends; the NaN
    guard only sets `stop_training`), so they say so and the loop runs as in a
    plain `fit`. (On TensorFlow Keras copies the metrics every step anyway.)"""
    import keras

    from zoo.callbacks import AtomicBackup, AtomicCheckpoint, BudgetedBackup, BudgetedCheckpoint, HistoryLogger

    checkpoint_cls = BudgetedCheckpoint if budgeted else AtomicCheckpoint
    backup_cls = BudgetedBackup if budgeted else AtomicBackup
    cbs = [*first, keras.callbacks.TerminateOnNaN(), HistoryLogger(str(run_dir / "history.csv"))]
    best_model = stopping = None
    if checkpoint:
        best_model = checkpoint_cls(str(run_dir / "checkpoint.keras"), monitor=monitor, mode=mode, save_best_only=True)
        cbs.append(best_model)
    if int(hp["patience"]) > 0 or restore_best:  # patience 0 with restore_best: restore, never stop
        patience = int(hp["patience"]) or int(hp["epochs"]) + 1
        stopping = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                                 restore_best_weights=True)
        cbs.append(stopping)
    if backup:  # after early stopping: the backup at the end of fit holds the weights it restored
        cbs.append(backup_cls(str(run_dir / "backup")))
        cbs[-1].early_stopping, cbs[-1].checkpoint = stopping, best_model
    if tensorboard:  # update_freq="epoch": no batch-end work either; HParams for the dashboard's comparisons
        from tensorboard.plugins.hparams import api as hparams_api

        cbs.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
        shown = {k: v for k, v in (hp if hparams is None else hparams).items()
                 if isinstance(v, (bool, int, float, str))}
        cbs.append(hparams_api.KerasCallback(str(run_dir / "tensorboard"), shown, trial_id=run_dir.name))
    for cb in cbs:
        cb.async_safe = True
    return cbs + list(extra)


def _prepare_run_dir(run_dir: Path) -> None:
    """Create the run directory; an interrupted run in it resumes (from its backup,
    which train() removes only after every result is written), a finished one is
    never overwritten."""
    files.remove_stale(run_dir)  # e.g. a backup whose removal was killed half-way
    backup = (run_dir / "backup").exists()
    status = _run_status(run_dir)
    if status == "completed" and not backup:
        raise ZooError(f"run directory {str(run_dir)!r} holds a finished run; choose another --run-name")
    if status == "damaged" and not backup and (run_dir / "model.keras").exists():
        raise ZooError(f"{run_dir / 'metrics.json'} is damaged and the run may have finished; delete "
                       f"{str(run_dir)!r} to train it again, or choose another --run-name")
    if not backup:  # nothing to resume: start the history afresh
        (run_dir / "history.csv").unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _run_status(run_dir: Path) -> str | None:
    """metrics.json's status: None when absent, "damaged" when unreadable."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return "damaged"


def _trained_seconds(run_dir: Path) -> float | None:
    """The training time of the epochs in the backup, counted across resumptions."""
    try:
        return float(json.loads((run_dir / "backup" / "training_metadata.json").read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_backup(run_dir: Path) -> None:
    """Remove the backup in one atomic step (a rename), then its files."""
    backup = run_dir / "backup"
    if backup.exists():
        gone = run_dir / f".tmp-{os.getpid()}-backup"
        os.replace(backup, gone)
        shutil.rmtree(gone, ignore_errors=True)


def history_rows(path: Path) -> tuple[list[str], dict[int, dict[str, str]], int]:
    """The CSVLogger file's columns, its rows by epoch (an epoch repeated after a
    resume counts once, as its last run; a row cut short by a crash is left out) and
    its number of data lines."""
    import csv

    if not path.exists():
        return [], {}, 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        lines, fields = list(reader), list(reader.fieldnames or [])
    by_epoch = {int(row["epoch"]): row for row in lines
                if None not in row and None not in row.values() and row["epoch"].isdigit()}  # else cut short
    return fields, by_epoch, len(lines)


def read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch metrics from the CSVLogger file (all epochs, across resumptions)."""
    fields, by_epoch, _ = history_rows(path)
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    return {k: [float("nan" if r[k] == "NA" else r[k]) for r in rows] for k in fields if k != "epoch"} if rows else {}


_write_json = files.write_json


def train(model: str | ModelSpec, dataset: str | Dataset | None = None, *, runs_dir: str | Path = "runs",
          run_name: str | None = None, seed: int = 0, data_dir: str | None = None,
          split: tuple[float, float, float] | None = None, limit: int | None = None,
          dataset_options: Mapping[str, Any] | None = None, tensorboard: bool = False,
          verbose: Any = "auto", callbacks: Sequence[Any] = (), adversarial: Any = None,
          augment: str | Sequence[str] | None = None, from_run: str | Path | None = None,
          freeze: str | int | None = None, weights: str | Path | None = None, partial: bool = False,
          recipe: str | None = None, device: str = "auto", precision: str = "auto",
          xla: bool | None = None, distribute: str | None = None, metrics: Sequence[str] = (),
          monitor: str | None = None, **hyperparameters: Any) -> Run:
    """Train a registered model on a dataset and write a run directory.

    `hyperparameters` override the spec's defaults (epochs, batch_size,
    optimizer, learning_rate, depth, ...). The same seed gives the same metrics
    on the same machine. A re-run with the same `run_name` after an interruption
    resumes from the last finished epoch.

    `adversarial` ("fgsm", "pgd" or a dict of zoo.adversarial.AttackConfig
    options) trains a classifier on adversarial examples too; model.keras stays
    the plain classifier.

    `augment` names image augmentations for the training split (see zoo.augment).
    `from_run` starts from a previous run's (or a .keras model's) layers, with the
    first N weight layers or all but the head frozen by `freeze` (see zoo.transfer).
    `weights` starts from a weight preset of the model ("imagenet") or a weights file
    (see zoo.presets); loading fewer than half of the weight layers is an error unless
    `partial`. `recipe` trains with a named recipe of the spec ("paper", see
    zoo.recipes): its hyperparameters, augmentation and adversarial training are the
    starting point, which the other arguments override.

    `device`, `precision`, `xla` and `distribute` choose where and how it computes
    (see zoo.scale); under `distribute` the batch size is the global batch size.

    `metrics` adds metrics by name (auc, precision, recall, f1, r2, ...; see
    zoo.metrics). `monitor` ("val_accuracy", "val_auc:max") is the metric early
    stopping and the checkpoint follow instead of val_loss; the model keeps the
    weights of its best epoch by it, even with patience 0.
    """
    from zoo import scale

    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    from zoo import recipes

    spec, chosen = recipes.apply(spec, recipe)
    if chosen is not None:
        augment = list(chosen.augment) if augment is None and chosen.augment else augment
        adversarial = dict(chosen.adversarial) if adversarial is None and chosen.adversarial else adversarial
    if augment:
        from zoo.augment import apply as augment_pipeline
        from zoo.augment import parse as parse_augment

        parse_augment(augment)  # refuse unknown names before any work
    source = None
    if freeze and from_run is None and weights is None:
        raise ZooError("freeze needs from_run or weights (the run, model or weights whose layers to reuse)")
    if from_run is not None and weights is not None:
        raise ZooError("give from_run (--from) or weights (--weights), not both")
    if from_run is not None or weights is not None:
        from zoo import presets, transfer

        source = transfer.load_source(from_run) if weights is None else presets.source(weights, spec, data_dir)
        hp = transfer.hyperparameters(spec, source, hyperparameters, freeze)
        if presets.raw_inputs(source):  # the weights' input block takes raw pixels (keras.applications' caffe)
            dataset_options = {"normalize": False, **dict(dataset_options or {})}
    else:
        hp = resolve_hyperparameters(spec, hyperparameters)
    if not isinstance(dataset, Dataset):
        check_dataset(dataset or spec.default_dataset or "", data_dir)  # before TensorFlow: seconds sooner
    runtime = scale.configure(device, precision, xla, distribute)  # first: before TensorFlow initialises
    set_seed(seed, deterministic=runtime.deterministic)
    plugin_callbacks = [c for c in callbacks if isinstance(c, str)]  # zoo.callbacks plugins by name
    from_names = []
    if plugin_callbacks:  # first in the list: what they add to an epoch's logs reaches the history
        from zoo.callbacks import from_plugins

        callbacks, from_names = [c for c in callbacks if not isinstance(c, str)], from_plugins(plugin_callbacks)
    if not isinstance(dataset, Dataset):
        name = dataset or spec.default_dataset
        if name is None:
            raise ZooError(f"model {spec.name!r} has no default dataset; give one with --dataset")
        dataset = load_dataset(name, batch_size=int(hp["batch_size"]), split=split, seed=seed, data_dir=data_dir,
                               limit=limit, **dict(dataset_options or {}))
        if chosen is not None and chosen.validation and split is None and limit is None:
            dataset = recipes.holdout(dataset, chosen.validation)  # the paper trained on all the training data
    data_spec = dataset.spec
    spec.check_data(data_spec)
    task = task_for(spec, data_spec)
    monitor_name, monitor_mode, extra_metrics = _monitor(monitor, task, metrics)
    targets = "inputs" if task in UNSUPERVISED_TASKS else "labels"
    batch_size = int(hp["batch_size"])
    with runtime.scope():  # dtype policy and tf.distribute strategy around build and compile
        keras_model = build_model(spec, hp, data_spec)
        transferred = None
        if source is not None:
            presets.complete(source, spec, hp, data_spec)
            transferred = transfer.apply(keras_model, source, freeze, data_spec, partial=partial, spec=spec)
        fit_model, attack = keras_model, None
        if adversarial:  # fit a wrapper whose train_step adds adversarial examples; save the classifier
            from zoo import adversarial as adv

            if has_own_train_step(keras_model) and "adversarial" not in spec.capabilities:
                raise ZooError(f"model {spec.name!r} trains with its own train_step, which adversarial training "
                               "would replace (silently dropping what it does); its spec must declare the "
                               "'adversarial' capability to say its train_step composes with it")

            fit_model, attack = adv.wrap(keras_model, adversarial, data_spec, task, seed)
        steps_per_epoch = math.ceil(data_spec.sizes["train"] / batch_size)
        if per_example(hp):  # the paper's SDLM: an update per example; the rate schedule counts examples
            from zoo import sdlm

            if adversarial or has_own_train_step(keras_model):
                raise ZooError("sdlm_curvature=gauss-newton trains with its own per-example step, which adversarial "
                               "training or the model's own train_step would replace; use sdlm_curvature=fisher")
            if runtime.strategy is not None:
                raise ZooError("sdlm_curvature=gauss-newton updates after every example, in order: it does not run "
                               "under --distribute")
            fit_model, steps_per_epoch = sdlm.wrap(keras_model), data_spec.sizes["train"]
            callbacks = [*callbacks, sdlm.curvature_callback(keras_model, dataset.arrays["train"][0], batch_size, seed)]
        runtime.check_model(spec, fit_model)
        compile_model(fit_model, spec, hp, data_spec, steps_per_epoch=steps_per_epoch,
                      jit_compile=False if per_example(hp) else runtime.jit_compile, metrics=extra_metrics)
    # batches to transform (augmentation) or shard (tf.distribute): the zoo's tf.data pipeline
    fit_data = dataset.fit_data(batch_size=batch_size, targets=targets,
                                pipeline=bool(augment) or runtime.strategy is not None)
    if augment:
        fit_data["x"] = augment_pipeline(fit_data["x"], augment, data_spec, seed, targets)

    run_dir = runtime.write_dir(_run_dir(runs_dir, spec.name, data_spec.name, run_name))  # non-chief: a temp dir
    _prepare_run_dir(run_dir)
    config = {"model": spec.name, "family": spec.family, "task": task, "dataset": data_spec.name, "seed": seed,
              "split": list(split) if split else None, "limit": limit, "hyperparameters": hp,
              "data_spec": data_spec.to_json(), "versions": versions(), **runtime.to_config(),
              **({"adversarial": attack.to_json()} if attack else {}),
              "provenance": provenance(spec, dataset_name=data_spec.name, callbacks=plugin_callbacks),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if augment:
        config["augment"] = [f"{n}={v}" for n, v in parse_augment(augment)]
    if transferred is not None:
        config["transfer"] = transferred.to_json()
    if chosen is not None:
        config["recipe"] = chosen.name
    _write_json(run_dir / "config.json", config)

    if spec.pretrain is not None:
        from zoo.quiet import speaking

        with speaking(verbose != 0):  # a line per pretrained layer, unless quiet
            spec.pretrain(keras_model, dataset, hp, run_dir)
    runtime.prepare_fit(fit_model, fit_data["x"])  # under a strategy: build state without Keras peeking at a batch
    started = time.perf_counter()
    fit = fit_model.fit(**fit_data, epochs=int(hp["epochs"]), verbose=verbose,
                        callbacks=training_callbacks(run_dir, hp, tensorboard=tensorboard, extra=callbacks,
                                                     first=from_names,
                                                     budgeted=runtime.strategy is None, monitor=monitor_name,
                                                     mode=monitor_mode, restore_best=monitor is not None))
    seconds = time.perf_counter() - started
    seconds = _trained_seconds(run_dir) or seconds  # a resumed run: the time of its epochs in every process
    history = read_history(run_dir / "history.csv") or {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    _write_json(run_dir / "history.json", history)
    losses = history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        _remove_backup(run_dir)  # a failed run is over: the same command starts it afresh
        _write_json(run_dir / "metrics.json", {"status": "failed", "reason": "loss became NaN or infinite"})
        raise ZooError(f"training {spec.name!r} diverged: the loss became NaN/infinite at epoch {len(losses)}. "
                       "Try a lower learning rate. Run directory: " + str(run_dir))

    test = fit_model.evaluate(dataset.pipeline("test", batch_size=batch_size, targets=targets),
                              return_dict=True, verbose=0)
    metrics = {"status": "completed", "epochs_run": len(losses), "train_seconds": round(seconds, 3),
               **{f"test_{k}": float(v) for k, v in test.items()}, **baseline(task, dataset),
               "monitor": kept_epoch(history, monitor_name, monitor_mode,
                                     restored=int(hp["patience"]) > 0 or monitor is not None)}
    with files.replacing(run_dir / "model.keras") as tmp:
        keras_model.save(tmp)
    _write_json(run_dir / "metrics.json", metrics)
    config["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_json(run_dir / "config.json", config)
    run = Run(run_dir, config, history, metrics, keras_model, dataset)
    write_learning_curves(run)
    if attack:
        adv.after_training(run, attack)
    for report in REPORTS:
        report(run)
    _remove_backup(run_dir)  # last: a kill before this leaves a run that the same command finishes
    runtime.finish(run_dir)  # a non-chief worker removes its temporary directory
    return run


def write_learning_curves(run: Run) -> None:
    """learning_curves.png, titled with the run's name and what it changed from the
    defaults, the kept epoch and the baseline marked, the loss named for the task."""
    from zoo.plots import learning_curves
    from zoo.runs import RunInfo

    changed = RunInfo(run.dir, run.config, run.metrics, run.history).changed()
    shown = ", ".join(f"{k}={v}" for k, v in list(changed.items())[:5] if k != "epochs")
    task, m = run.config.get("task"), run.metrics
    baselines = {k: m[f"baseline_test_{k}"] for k in ("accuracy", "mae", "mse") if f"baseline_test_{k}" in m}
    loss = run.hyperparameters.get("loss", "auto")
    labels = {"loss": {"classification": f"loss ({'hinge' if loss == 'hinge' else 'cross-entropy'})",
                       "regression": "loss (on standardised targets)",
                       "reconstruction": f"loss ({'mse' if loss == 'auto' else loss})",
                       "features": "reconstruction error"}.get(task, "loss")}
    if task == "reconstruction" and loss in ("auto", "mse") and "mse" in baselines:
        baselines["loss"] = baselines["mse"]
    title = f"{run.dir.name}: {run.config['model']} on {run.data_spec.name}" + (f"\n{shown}" if shown else "")
    learning_curves(run.history, run.dir / "learning_curves.png", title=title,
                    kept_epoch=(m.get("monitor") or {}).get("kept_epoch"), baselines=baselines, labels=labels)


def kept_epoch(history: Mapping[str, Sequence[float]], monitor: str, mode: str, restored: bool) -> dict[str, Any]:
    """Which epoch's weights the model kept: the best by `monitor` when early
    stopping restored it, else the last; with the monitored figure at both."""
    values = list(history.get(monitor, []))
    if not values:
        return {"metric": monitor, "kept_epoch": len(history.get("loss", [])), "restored": False}
    finite = [(v if math.isfinite(v) else (math.inf if mode != "max" else -math.inf)) for v in values]
    best = (max if mode == "max" else min)(range(len(finite)), key=finite.__getitem__)
    kept = best if restored else len(values) - 1
    return {"metric": monitor, "best": values[best], "best_epoch": best + 1, "kept_epoch": kept + 1,
            "kept": values[kept], "last_epoch": len(values), "restored": restored and kept != len(values) - 1}


def _monitor(monitor: str | None, task: str, metrics: Sequence[str]) -> tuple[str, str, list[str]]:
    """(metric name, min/max/auto, metrics to compile) for train's `monitor`."""
    from zoo import metrics as zoo_metrics

    if monitor is None:
        return "val_loss", "auto", list(metrics)
    name, _, mode = monitor.partition(":")
    mode = mode or zoo_metrics.direction(name) or ""
    if mode not in ("min", "max"):
        raise ZooError(f"cannot tell whether to minimise or maximise {name!r}; write {name}:min or {name}:max")
    base = name.removeprefix("val_")
    wanted = list(dict.fromkeys([*metrics, base])) if base != "loss" else list(metrics)
    zoo_metrics.check(wanted, task)
    return name, mode, wanted


def baseline(task: str, dataset: Dataset) -> dict[str, float]:
    """What a model that ignores its inputs scores on the test split: the majority
    class for classification, the training mean for regression."""
    import numpy as np

    (_, ytr), (xte, yte) = dataset.arrays["train"], dataset.arrays["test"]
    if task == "classification":
        majority = np.bincount(ytr.astype("int64")).argmax()
        return {"baseline_test_accuracy": float(np.mean(yte == majority))}
    if task == "regression":
        err = yte - ytr.mean(axis=0)
        mean = {"baseline_test_mse": float(np.mean(err ** 2)), "baseline_test_mae": float(np.mean(np.abs(err)))}
        windowing = dataset.spec.preprocessing.get("windowing")
        if windowing:  # forecasting: the naive baseline repeats the last value seen
            from zoo.data.sequences import last_value_baseline

            return {**last_value_baseline(windowing, dataset.spec.preprocessing, xte, yte), "baseline": "last_value",
                    "mean_baseline_test_mse": mean["baseline_test_mse"]}
        return mean
    if task in UNSUPERVISED_TASKS:  # the mean training input, as a reconstruction
        mean = dataset.arrays["train"][0].mean(axis=0)
        return {"baseline_test_mse": float(np.mean((xte - mean) ** 2))}
    return {}


# image classifiers also get a confusion matrix, misclassified examples and filters
from zoo.diagnostics import decision_boundary_report, forecast_report, image_classifier_report  # noqa: E402

REPORTS += [image_classifier_report, decision_boundary_report, forecast_report]
