"""Keras-Tuner on top of the core's training path.

`ZooHyperModel` turns a model spec's declared search space into a Keras-Tuner
HyperModel; `ZooTuner` runs each trial through zoo.training's build/compile and
callbacks, records it (zoo_trial.json beside Keras-Tuner's trial.json), keeps
only the best trial's model, and tells trial failures (recorded, the sweep goes
on) from environment errors (the sweep stops).
"""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module

from zoo.data import Dataset
from zoo.errors import ZooError
from zoo.spec import UNSUPERVISED_TASKS, Choice, ModelSpec
from zoo.training import build_and_compile, set_seed, task_for, training_callbacks
from zoo.tuning.callbacks import MedianStopping
from zoo.tuning.space import SweepSpace

TRIAL_RECORD = "zoo_trial.json"
BEST_MODEL = "model.keras"
HYPERBAND_WEIGHTS = "checkpoint.weights.h5"
#: exceptions that mean the environment is broken, not the trial: stop the sweep
ENVIRONMENT_ERRORS = (ImportError, PermissionError)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a kill -9 leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _atomic_save_json(path, obj):
    """Keras-Tuner's utils.save_json, made atomic so that a sweep killed while it
    writes oracle.json or a trial.json can still be resumed."""
    text = json.dumps(obj)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return text


def _install_atomic_save() -> None:
    from keras_tuner.src import utils

    utils.save_json = _atomic_save_json


_install_atomic_save()


class ZooHyperModel(keras_tuner.HyperModel):
    """A model spec as a HyperModel: searched names come from the sweep space,
    everything else is fixed; build() is zoo.training's build_and_compile."""

    def __init__(self, spec: ModelSpec, space: SweepSpace, dataset: Dataset) -> None:
        super().__init__(name=spec.name, tunable=True)
        self.spec, self.space, self.dataset = spec, space, dataset

    def declare_hyperparameters(self, hp) -> None:
        for name, param in self.space.params.items():
            default = self.space.fixed.get(name)
            param.declare(hp, name, default if _fits(param, default) else None)

    def values(self, hp) -> dict[str, Any]:
        """The full hyperparameter dict of a trial: fixed values, then hp's."""
        self.declare_hyperparameters(hp)
        values = dict(self.space.fixed)
        values.update({k: _plain(v) for k, v in hp.values.items() if not k.startswith("tuner/")})
        return values

    def build(self, hp):
        return build_and_compile(self.spec, self.values(hp), self.dataset.spec)


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return float(f"{v:.10g}") if isinstance(v, float) else v  # 0.30000000000000004 -> 0.3


def _fits(param: Any, default: Any) -> bool:
    """Whether a spec default is a legal default for the declared range."""
    if default is None:
        return False
    if isinstance(param, Choice):
        return default in param.values
    if hasattr(param, "min"):
        try:
            return param.min <= default <= param.max
        except TypeError:
            return False
    return isinstance(default, bool)


class TrialFailed(keras_tuner.errors.FailedTrialError):
    """A trial that cannot finish (NaN loss, out of memory, bad combination)."""


class EnvironmentBroken(keras_tuner.errors.FatalError):
    """An error no trial can avoid (a missing package, ...): stops the sweep."""


class ObjectiveMissing(ZooError):
    """The objective is not a metric the model reports: no trial can succeed."""


class ZooTuner(keras_tuner.Tuner):
    """Runs trials through zoo.training's path and records them for the trials table."""

    def __init__(self, oracle, hypermodel: ZooHyperModel, *, seed: int = 0, median_stopping: bool = False,
                 median_min_trials: int = 3, median_grace_epochs: int = 1, tensorboard: bool = False,
                 verbose: Any = 0, **kwargs: Any) -> None:
        super().__init__(oracle, hypermodel, **kwargs)
        self.seed, self.verbose = seed, verbose
        self.median_stopping = median_stopping
        self.median_min_trials, self.median_grace_epochs = median_min_trials, median_grace_epochs
        self.tensorboard = tensorboard

    def _populate_initial_space(self) -> None:
        # The space is declared up front (no conditional hyperparameters), so
        # there is no need for Keras-Tuner's exploratory builds.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    # --- search --------------------------------------------------------------

    def search(self, *args: Any, **kwargs: Any) -> None:
        if dist_utils.is_chief_oracle():
            # The chief only serves the oracle; Keras-Tuner's own loop polls
            # every 20 s once the search is over, this one every second.
            self.save()
            serve_oracle(self.oracle)
            return
        super().search(*args, **kwargs)

    @property
    def objective(self):
        return self.oracle.objective

    def on_trial_end(self, trial) -> None:
        super().on_trial_end(trial)
        if not self._is_worker():
            self.prune()

    # --- one trial -------------------------------------------------------------

    def run_trial(self, trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        hm: ZooHyperModel = self.hypermodel
        hp = trial.hyperparameters
        values = hm.values(hp)
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        (trial_dir / "history.csv").unlink(missing_ok=True)  # a retried trial starts afresh
        record: dict[str, Any] = {"trial_id": trial.trial_id, "status": "running", "reason": None, "note": None,
                                  "hyperparameters": {k: values[k] for k in hm.space.params if k in values},
                                  "tuner_id": self.tuner_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for key, column in (("tuner/epochs", "hyperband_epochs"), ("tuner/trial_id", "hyperband_parent"),
                            ("tuner/bracket", "hyperband_bracket"), ("tuner/round", "hyperband_round")):
            if key in hp.values:
                record[column] = hp.values[key]
        write_json(trial_dir / TRIAL_RECORD, record)
        started = time.perf_counter()
        keras.backend.clear_session()
        gc.collect()
        try:
            metrics = self._fit(trial, hp, values, trial_dir, record)
        except Exception as exc:  # classified: environment error stops, others fail the trial
            record["seconds"] = round(time.perf_counter() - started, 3)
            record["status"], record["reason"] = "failed", failure_reason(exc)
            write_json(trial_dir / TRIAL_RECORD, record)
            keras.backend.clear_session()
            if isinstance(exc, (*ENVIRONMENT_ERRORS, ObjectiveMissing, keras_tuner.errors.FatalError)):
                raise EnvironmentBroken(f"{record['reason']}") from exc
            raise TrialFailed(record["reason"]) from exc
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["status"] = "completed"
        write_json(trial_dir / TRIAL_RECORD, record)
        keras.backend.clear_session()
        gc.collect()
        return metrics

    def _fit(self, trial, hp, values: dict[str, Any], trial_dir: Path, record: dict[str, Any]) -> dict[str, float]:
        hm: ZooHyperModel = self.hypermodel
        spec, dataset = hm.spec, hm.dataset
        set_seed(self.seed)
        model = build_and_compile(spec, values, dataset.spec)
        epochs = int(hp.values.get("tuner/epochs", values["epochs"]))
        initial_epoch = int(hp.values.get("tuner/initial_epoch", 0))
        start_curve: list[float] = []
        parent = hp.values.get("tuner/trial_id")
        if parent is not None:
            weights = Path(self.get_trial_dir(parent)) / HYPERBAND_WEIGHTS
            parent_record = read_record(Path(self.get_trial_dir(parent)))
            if weights.exists():
                model.load_weights(weights)
                start_curve = list((parent_record or {}).get("curve", []))[:initial_epoch]
            else:  # the parent's weights are gone: train from scratch
                initial_epoch = 0
        record["initial_epoch"] = initial_epoch
        median = None
        extra = []
        if self.median_stopping:
            median = MedianStopping(self.objective.name, self.objective.direction, self.reference_curves(trial.trial_id),
                                    min_trials=self.median_min_trials, grace_epochs=self.median_grace_epochs,
                                    start_curve=start_curve)
            extra.append(median)
        callbacks = training_callbacks(trial_dir, values, tensorboard=self.tensorboard, extra=extra,
                                       checkpoint=False, backup=False)
        targets = "inputs" if task_for(spec, dataset.spec) in UNSUPERVISED_TASKS else "labels"
        batch_size = int(values["batch_size"])
        fit = model.fit(**dataset.fit_data(batch_size=batch_size, targets=targets), epochs=epochs,
                        initial_epoch=initial_epoch, verbose=self.verbose, callbacks=callbacks)
        history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
        losses = history.get("loss", [])
        record["epochs_run"] = len(losses)
        record["history"] = history
        name = self.objective.name
        if name not in history:
            raise ObjectiveMissing(f"objective {name!r} is not among the metrics this model reports "
                           f"({', '.join(sorted(history))}); choose one of them with --objective")
        record["curve"] = start_curve + history[name]
        if not losses or not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"loss became NaN or infinite at epoch {initial_epoch + len(losses)}")
        if median is not None and median.stopped_epoch is not None:
            record["note"] = (f"stopped by the median rule after epoch {median.stopped_epoch} "
                              f"(median {median.median_at_stop:.4g})")
        curve = [v if math.isfinite(v) else (math.inf if self.objective.direction == "min" else -math.inf)
                 for v in history[name]]
        best = (min if self.objective.direction == "min" else max)(range(len(curve)), key=curve.__getitem__)
        metrics = {k: vs[best] for k, vs in history.items() if k != "learning_rate" and len(vs) > best}
        record["best_epoch"] = initial_epoch + best + 1
        record["metrics"] = metrics
        record["objective"] = metrics[name]
        self._keep_model(trial, model, metrics[name], trial_dir, hyperband="tuner/epochs" in hp.values)
        return metrics

    # --- median rule references --------------------------------------------------

    def reference_curves(self, current_id: str) -> list[list[float]]:
        """Objective curves of the finished trials (read from their records, so
        workers of a distributed sweep see each other's trials)."""
        curves = []
        for record in all_records(Path(self.project_dir)).values():
            if record.get("trial_id") != current_id and record.get("status") == "completed" and record.get("curve"):
                curves.append(record["curve"])
        return curves

    # --- checkpoints -------------------------------------------------------------

    def _keep_model(self, trial, model, score: float, trial_dir: Path, hyperband: bool) -> None:
        """Save this trial's model only when it beats every finished trial (and,
        under Hyperband, its weights, which a later round may continue)."""
        if hyperband:
            model.save_weights(trial_dir / HYPERBAND_WEIGHTS)
        best = best_record(Path(self.project_dir), self.objective.direction, exclude=trial.trial_id)
        if best is None or _better(score, best["objective"], self.objective.direction):
            model.save(trial_dir / BEST_MODEL)

    def prune(self, final: bool = False) -> None:
        """Delete every trial's saved model but the best's; Hyperband's
        continuation weights only at the end of the sweep (`final`)."""
        project = Path(self.project_dir)
        best = best_record(project, self.objective.direction)
        keep = best["trial_id"] if best else None
        for d in project.glob("trial_*"):
            record = read_record(d)
            if record is None or record.get("trial_id") == keep:
                continue
            if record.get("status") != "running":
                (d / BEST_MODEL).unlink(missing_ok=True)
            if final:
                (d / HYPERBAND_WEIGHTS).unlink(missing_ok=True)
            for leftover in ("backup", "checkpoint", "checkpoint.weights.h5.tmp"):
                p = d / leftover
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)


def serve_oracle(oracle) -> None:
    """Keras-Tuner's chief loop (oracle_chief.start_server) with a 1 s poll."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(1)
    finally:
        server.stop(grace=2)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a trial failed."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name in ("ResourceExhaustedError", "MemoryError") or "out of memory" in text.lower() or "OOM" in text:
        return f"out of memory: {text}"[:300]
    if isinstance(exc, FloatingPointError):
        return text
    if isinstance(exc, ZooError):
        return text[:300]
    return f"{name}: {text}"[:300]


# --- records ---------------------------------------------------------------------


def read_record(trial_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((trial_dir / TRIAL_RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def all_records(project_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for d in sorted(project_dir.glob("trial_*")):
        record = read_record(d)
        if record is not None:
            out[record["trial_id"]] = record
    return out


def _better(a: float, b: float, direction: str) -> bool:
    if not math.isfinite(b):
        return math.isfinite(a)
    return a < b if direction == "min" else a > b


def best_record(project_dir: Path, direction: str, exclude: str | None = None) -> dict[str, Any] | None:
    best = None
    for record in all_records(project_dir).values():
        if record.get("status") != "completed" or record["trial_id"] == exclude:
            continue
        value = record.get("objective")
        if value is None or not math.isfinite(value):
            continue
        if best is None or _better(value, best["objective"], direction):
            best = record
    return best


def make_oracle(tuner: str, *, objective, max_trials: int, seed: int, max_epochs: int, factor: int = 3,
                max_failures: int | None = 10):
    """A Keras-Tuner oracle by name: random, bayesian, hyperband or grid."""
    common = {"objective": objective, "seed": seed, "max_consecutive_failed_trials": max_failures,
              "max_retries_per_trial": 0}
    if tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    if tuner == "grid":
        return keras_tuner.oracles.GridSearchOracle(max_trials=max_trials, **common)
    if tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, **common)
        oracle.max_trials = max_trials  # a budget on top of Hyperband's own schedule
        return oracle
    raise ZooError(f"unknown tuner {tuner!r}; use random, bayesian, hyperband or grid")


def make_objective(name: str, direction: str):
    """A Keras-Tuner objective on metric `name`, minimised or maximised."""
    return keras_tuner.Objective(name, direction)


def trial_status(trial) -> str:
    return {trial_module.TrialStatus.COMPLETED: "completed", trial_module.TrialStatus.FAILED: "failed",
            trial_module.TrialStatus.INVALID: "failed", trial_module.TrialStatus.RUNNING: "interrupted"}.get(
        trial.status, str(trial.status).lower())


def keep_names(values: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {k: values[k] for k in names if k in values}
