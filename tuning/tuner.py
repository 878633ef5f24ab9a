"""Keras-Tuner on top of the core's training path.

`ZooHyperModel` turns a sweep space (zoo.tuning.space) into Keras-Tuner
hyperparameters, conditional ones in Keras-Tuner's conditional scopes;
`ZooTuner` runs each trial through zoo.training's build/compile and callbacks,
records it (zoo_trial.json beside Keras-Tuner's trial.json), keeps only the best
trial's model, tells trial failures (recorded, the sweep goes on) from
environment errors (the sweep stops), prints one line per trial, and in a
distributed sweep gives the trial of a worker that stopped answering to another.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import shutil
import statistics
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner
from keras_tuner.src import config as kt_config
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import oracle as oracle_module
from keras_tuner.src.engine import trial as trial_module

from zoo import files
from zoo.data import Dataset
from zoo.errors import ZooError
from zoo.spec import UNSUPERVISED_TASKS, ModelSpec, declare_space, space_values
from zoo.training import build_and_compile, set_seed, task_for, training_callbacks
from zoo.tuning.callbacks import MedianStopping, ObjectiveLogger
from zoo.tuning.objectives import Objective
from zoo.tuning.space import SweepSpace

TRIAL_RECORD = "zoo_trial.json"
BEST_MODEL = "model.keras"
HYPERBAND_WEIGHTS = "checkpoint.weights.h5"
SWEEP_LOG = "sweep.log"
#: exceptions that mean the environment is broken, not the trial: stop the sweep
ENVIRONMENT_ERRORS = (ImportError, PermissionError)
#: a worker of a distributed sweep tells the chief it is alive this often (seconds)
HEARTBEAT_SECONDS = 5.0
#: a trial's statuses that mean it ran to an end (it is not run again)
FINISHED = ("completed", "stopped", "failed")

kt_config.DEBUG = False  # one traceback per failure, in sweep.log, not two on the console


#: write JSON atomically (a kill -9 leaves the old file or the new one)
write_json = files.write_json


def _atomic_save_json(path, obj):
    """Keras-Tuner's utils.save_json, made atomic so that a sweep killed while it
    writes oracle.json or a trial.json can still be resumed."""
    text = json.dumps(obj)
    files.write_text(path, text)
    return text


def _install_atomic_save() -> None:
    from keras_tuner.src import utils

    utils.save_json = _atomic_save_json


_install_atomic_save()


# --- the space as Keras-Tuner hyperparameters -------------------------------------------


def declare(space: SweepSpace, hp) -> None:
    """Declare a sweep space on a keras_tuner.HyperParameters (zoo.spec.declare_space)."""
    declare_space(space.params, space.fixed, hp)


def trial_values(space: SweepSpace, hp) -> tuple[dict[str, Any], dict[str, Any]]:
    """(searched, values) of a trial: its active searched values as recorded
    (widths_1, widths_2, ...) and every hyperparameter it trains with (fixed
    values, then the searched ones, with per-layer ranges assembled into lists)."""
    declare(space, hp)
    searched = {k: _plain(v) for k, v in hp.values.items() if not k.startswith("tuner/")}
    return searched, space_values(space.params, space.fixed, searched)


class ZooHyperModel(keras_tuner.HyperModel):
    """A sweep space as a HyperModel; build() is zoo.training's build_and_compile
    with the metrics the objectives need."""

    def __init__(self, spec: ModelSpec, space: SweepSpace, dataset: Dataset, metrics: Sequence[str] = ()) -> None:
        super().__init__(name=spec.name, tunable=True)
        self.spec, self.space, self.dataset, self.metrics = spec, space, dataset, tuple(metrics)

    def declare_hyperparameters(self, hp) -> None:
        declare(self.space, hp)

    def values(self, hp) -> dict[str, Any]:
        """The full hyperparameter dict of a trial: fixed values, then hp's."""
        return trial_values(self.space, hp)[1]

    def build(self, hp):
        return build_and_compile(self.spec, self.values(hp), self.dataset.spec, metrics=self.metrics)


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return float(f"{v:.10g}") if isinstance(v, float) else v  # 0.30000000000000004 -> 0.3


class TrialFailed(keras_tuner.errors.FailedTrialError):
    """A trial that cannot finish (NaN loss, out of memory, bad combination)."""


class EnvironmentBroken(keras_tuner.errors.FatalError):
    """An error no trial can avoid (a missing package, ...): stops the sweep."""


class ObjectiveMissing(ZooError):
    """The objective is not a metric the model reports: no trial can succeed."""


class SweepPaused(keras_tuner.errors.FatalError):
    """This process ran the trials it was asked to run (pause_after); the sweep goes on in another."""


class ZooTuner(keras_tuner.Tuner):
    """Runs trials through zoo.training's path and records them for the trials table."""

    def __init__(self, oracle, hypermodel: ZooHyperModel, *, objectives: Sequence[Objective], seed: int = 0,
                 median_stopping: bool = False, median_min_trials: int = 3, median_grace_epochs: int = 1,
                 tensorboard: bool = False, verbose: Any = 0, say=None, worker_timeout: float = 60.0,
                 planned_trials: int | None = None, pause_after: int | None = None, **kwargs: Any) -> None:
        self.objectives = list(objectives)
        with contextlib.redirect_stdout(io.StringIO()):  # Keras-Tuner's "Reloading Tuner from ..."
            super().__init__(oracle, hypermodel, **kwargs)
        self.oracle.verbose = 0  # Keras-Tuner's per-trial display: the zoo prints its own line
        self.seed, self.verbose = seed, verbose
        self.median_stopping = median_stopping
        self.median_min_trials, self.median_grace_epochs = median_min_trials, median_grace_epochs
        self.tensorboard = tensorboard
        self.say = say or (lambda line: None)
        self.worker_timeout = worker_timeout
        self.planned_trials = planned_trials
        self.pause_after, self.trials_run = pause_after, 0
        self.unfinished: list[str] = []  # trials left when every worker of a distributed sweep stopped
        if not self._is_worker():
            self.reconcile()

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    def _populate_initial_space(self) -> None:
        # The space is declared up front, so Keras-Tuner's exploratory builds are not needed.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    # --- resuming -------------------------------------------------------------------

    def reconcile(self) -> None:
        """End, as they ended, the trials the oracle would run again although they
        finished: a sweep killed after a trial's record was written but before
        Keras-Tuner saved its end (or the trial that tripped --max-failures)."""
        project = Path(self.project_dir)
        for trial_id in list(self.oracle._retry_queue):
            record = read_record(project / f"trial_{trial_id}")
            if record is None or record.get("status") not in FINISHED:
                continue
            self.oracle._retry_queue.remove(trial_id)
            trial = self.oracle.trials[trial_id]
            if record["status"] == "failed":
                trial.status, trial.message = trial_module.TrialStatus.FAILED, record.get("reason")
            else:
                metrics = record.get("metrics") or {}
                self.oracle.update_trial(trial_id, metrics, step=max(0, int(record.get("best_epoch") or 1) - 1))
                trial.status = trial_module.TrialStatus.COMPLETED
            try:
                self.oracle.end_trial(trial)
            except RuntimeError:  # the consecutive-failure limit: raised again when the sweep goes on
                pass

    # --- search ---------------------------------------------------------------------

    def search(self, *args: Any, **kwargs: Any) -> None:
        gc.freeze()  # the loaded data and libraries: later collections skip them (~0.3 s a trial less)
        try:
            if dist_utils.is_chief_oracle():
                # The chief only serves the oracle and watches its workers.
                self.save()
                self.unfinished = serve_oracle(self.oracle, self.worker_timeout, Path(self.project_dir), self.say)
                return
            super().search(*args, **kwargs)
        finally:
            gc.unfreeze()

    @property
    def objective(self):
        return self.oracle.objective

    def on_trial_end(self, trial) -> None:
        record = read_record(Path(self.get_trial_dir(trial.trial_id)))
        if record is not None:
            self.say(trial_line(record, self.primary, self.planned_trials, self.best_so_far()))
        super().on_trial_end(trial)
        if not self._is_worker():
            self.prune()
        self.trials_run += 1
        if self.pause_after is not None and self.trials_run >= self.pause_after:
            raise SweepPaused(f"ran {self.trials_run} trials in this process")

    def best_so_far(self) -> dict[str, Any] | None:
        return best_record(Path(self.project_dir), self.primary.direction)

    # --- one trial ----------------------------------------------------------------------

    def run_trial(self, trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        hm: ZooHyperModel = self.hypermodel
        hp = trial.hyperparameters
        searched, values = trial_values(hm.space, hp)
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        (trial_dir / "history.csv").unlink(missing_ok=True)  # a retried trial starts afresh
        epochs = int(hp.values.get("tuner/epochs", values["epochs"]))
        record: dict[str, Any] = {"trial_id": trial.trial_id, "number": int(trial.trial_id), "status": "running",
                                  "reason": None, "note": None, "hyperparameters": searched,
                                  "values": {k: values[k] for k in hm.space.params if k in values},
                                  "budget": epochs, "tuner_id": self.tuner_id,
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for key, column in (("tuner/trial_id", "hyperband_parent"), ("tuner/bracket", "hyperband_bracket"),
                            ("tuner/round", "hyperband_round")):
            if key in hp.values:
                record[column] = hp.values[key]
        write_json(trial_dir / TRIAL_RECORD, record)
        started = time.perf_counter()
        keras.backend.clear_session(free_memory=False)
        gc.collect()
        try:
            with self._heartbeat(trial.trial_id):
                metrics = self._fit(trial, hp, values, trial_dir, record)
        except Exception as exc:  # classified: environment error stops, others fail the trial
            record["seconds"] = round(time.perf_counter() - started, 3)
            record["status"], record["reason"] = "failed", failure_reason(exc)
            write_json(trial_dir / TRIAL_RECORD, record)
            log_failure(Path(self.project_dir), trial.trial_id, exc)
            keras.backend.clear_session(free_memory=False)
            if isinstance(exc, (*ENVIRONMENT_ERRORS, ObjectiveMissing, keras_tuner.errors.FatalError)):
                raise EnvironmentBroken(f"{record['reason']}") from exc
            raise TrialFailed(record["reason"]) from exc
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["finished_at"] = time.time()
        record["status"] = "stopped" if record.get("stopped_epoch") else "completed"
        write_json(trial_dir / TRIAL_RECORD, record)
        keras.backend.clear_session(free_memory=False)
        return metrics

    def _fit(self, trial, hp, values: dict[str, Any], trial_dir: Path, record: dict[str, Any]) -> dict[str, float]:
        hm: ZooHyperModel = self.hypermodel
        spec, dataset = hm.spec, hm.dataset
        set_seed(self.seed)
        model = build_and_compile(spec, values, dataset.spec, metrics=hm.metrics)
        epochs = record["budget"]
        initial_epoch = int(hp.values.get("tuner/initial_epoch", 0))
        start_curve: list[float] = []
        parent = hp.values.get("tuner/trial_id")
        if parent is not None:
            weights = Path(self.get_trial_dir(parent)) / HYPERBAND_WEIGHTS
            parent_record = read_record(Path(self.get_trial_dir(parent)))
            if weights.exists():  # the optimizer's state too: the round continues the parent's training
                model.optimizer.build(model.trainable_variables)
                model.load_weights(weights)
                start_curve = list((parent_record or {}).get("curve", []))[:initial_epoch]
            else:  # the parent's weights are gone: train from scratch
                initial_epoch = 0
        record["initial_epoch"] = initial_epoch
        primary = self.primary
        monitor = primary.name if primary.per_epoch else "val_loss"
        mode = primary.direction if primary.per_epoch else "min"
        median = None
        extra = []
        if self.median_stopping:
            median = MedianStopping(primary.name, primary.direction, self.reference_curves(trial.trial_id),
                                    min_trials=self.median_min_trials, grace_epochs=self.median_grace_epochs,
                                    start_curve=start_curve)
            extra.append(median)
        logged = [o for o in self.objectives if o.fn is not None]
        callbacks = training_callbacks(trial_dir, values, tensorboard=self.tensorboard, extra=extra,
                                       checkpoint=False, backup=False, monitor=monitor, mode=mode, restore_best=True,
                                       hparams=record["hyperparameters"],
                                       first=[ObjectiveLogger(logged)] if logged else ())
        targets = "inputs" if task_for(spec, dataset.spec) in UNSUPERVISED_TASKS else "labels"
        batch_size = int(values["batch_size"])
        fit_data = dataset.fit_data(batch_size=batch_size, targets=targets)
        fit = model.fit(**fit_data, epochs=epochs, initial_epoch=initial_epoch, verbose=self.verbose,
                        callbacks=callbacks)
        history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
        losses = history.get("loss", [])
        record["epochs_run"] = len(losses)
        record["history"] = history
        per_epoch = [o.name for o in self.objectives if o.per_epoch]
        missing = [n for n in per_epoch if n not in history]
        if missing:
            raise ObjectiveMissing(f"objective {missing[0]!r} is not among the metrics this model reports "
                                   f"({', '.join(sorted(history))}); choose one of them with --objective")
        record["curve"] = start_curve + history[monitor]
        if not losses or not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"loss became NaN or infinite at epoch {initial_epoch + len(losses)}")
        if median is not None and median.stopped_epoch is not None:
            record["stopped_epoch"] = median.stopped_epoch
            record["note"] = (f"stopped by the median rule after epoch {median.stopped_epoch} of {epochs} "
                              f"(median {median.median_at_stop:.4g})")
        elif len(losses) < epochs - initial_epoch:
            record["note"] = f"early stopping after epoch {initial_epoch + len(losses)} of {epochs}"
        curve = [v if math.isfinite(v) else (math.inf if mode == "min" else -math.inf) for v in history[monitor]]
        best = (min if mode == "min" else max)(range(len(curve)), key=curve.__getitem__)
        metrics = {k: vs[best] for k, vs in history.items() if k != "learning_rate" and len(vs) > best}
        metrics.update(model_figures(model, dataset, [o.name for o in self.objectives if not o.per_epoch]))
        record["best_epoch"] = initial_epoch + best + 1
        record["metrics"] = metrics
        record["objective"] = metrics[primary.name]
        record["objectives"] = {o.name: metrics[o.name] for o in self.objectives}
        self._keep_model(trial, model, metrics[primary.name], trial_dir, hyperband="tuner/epochs" in hp.values)
        return metrics

    def _heartbeat(self, trial_id: str):
        """While a worker trains, tell the chief every few seconds that it is alive."""
        return Heartbeat(self.oracle, trial_id) if self._is_worker() else _Nothing()

    # --- median rule references --------------------------------------------------

    def reference_curves(self, current_id: str) -> list[list[float]]:
        """Objective curves of the trials that ran their whole budget (read from
        their records, so workers of a distributed sweep see each other's trials)."""
        curves = []
        for record in all_records(Path(self.project_dir)).values():
            if record.get("trial_id") != current_id and record.get("status") == "completed" and record.get("curve"):
                curves.append(record["curve"])
        return curves

    # --- checkpoints -------------------------------------------------------------

    def _keep_model(self, trial, model, score: float, trial_dir: Path, hyperband: bool) -> None:
        """Save this trial's model (the weights of its best epoch by the objective)
        only when it beats every finished trial (and, under Hyperband, its last
        weights' continuation file, which a later round may continue)."""
        if hyperband:
            model.save_weights(trial_dir / HYPERBAND_WEIGHTS)
        best = best_record(Path(self.project_dir), self.primary.direction, exclude=trial.trial_id)
        if best is None or _better(score, best["objective"], self.primary.direction):
            model.save(trial_dir / BEST_MODEL)

    def prune(self, final: bool = False) -> None:
        """Delete every trial's saved model but the best's; Hyperband's
        continuation weights only at the end of the sweep (`final`)."""
        project = Path(self.project_dir)
        best = best_record(project, self.primary.direction)
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


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Heartbeat:
    """A thread that asks the chief for the running trial every HEARTBEAT_SECONDS:
    the chief counts each request as a sign of life (see WatchedServicer)."""

    def __init__(self, oracle, trial_id: str) -> None:
        self.oracle, self.trial_id = oracle, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="zoo-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.oracle.get_trial(self.trial_id)
            except Exception:  # the chief is busy or gone: the trial's own calls will say so
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=2 * HEARTBEAT_SECONDS)
        return False


def model_figures(model, dataset: Dataset, names: Sequence[str]) -> dict[str, float]:
    """The objectives measured on a trained model: `params` (its parameter count)
    and `inference_time` (milliseconds for one example: the median of ten
    batch-1 predictions after a warm-up call)."""
    out: dict[str, float] = {}
    if "params" in names:
        out["params"] = float(model.count_params())
    if "inference_time" in names:
        x = dataset.arrays["val"][0][:1]
        model.predict_on_batch(x)
        times = []
        for _ in range(10):
            start = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - start)
        out["inference_time"] = round(1000 * statistics.median(times), 4)
    return out


# --- the chief of a distributed sweep ------------------------------------------------------


def serve_oracle(oracle, worker_timeout: float, project: Path, say) -> list[str]:
    """Keras-Tuner's chief loop (oracle_chief.start_server), polling every second,
    that also watches the workers: a worker not heard from for `worker_timeout`
    seconds is taken as stopped and its trial goes back to the queue for another
    worker. When every worker has stopped, the chief stops too and returns the
    trials still to run (the same commands, run again, finish the sweep)."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = _watched_servicer_class()(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(1)
            for tuner_id, trial_id in servicer.silent(worker_timeout):
                say(f"worker {tuner_id} stopped answering" + (f" during trial {int(trial_id)}; the trial goes back to "
                                                               "the queue" if trial_id else ""))
                if trial_id:
                    note_requeued(project, trial_id, tuner_id)
            if servicer.all_gone(worker_timeout):
                return sorted(oracle._retry_queue, key=int)
    finally:
        server.stop(grace=2)
    return []


_SERVICER: list = []


def _watched_servicer_class():
    if _SERVICER:
        return _SERVICER[0]
    from keras_tuner.src.distribute import oracle_chief

    class WatchedServicer(oracle_chief.OracleServicer):
        """Keras-Tuner's oracle servicer that notes when each worker was last heard from."""

        def __init__(self, oracle) -> None:
            super().__init__(oracle)
            self.last_seen: dict[str, float] = {}
            self.gone: set[str] = set()

        def _seen_tuner(self, tuner_id: str) -> None:
            self.last_seen[tuner_id] = time.monotonic()
            self.gone.discard(tuner_id)

        def _seen_trial(self, trial_id: str) -> None:
            for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
                if trial.trial_id == trial_id:
                    self._seen_tuner(tuner_id)

        def CreateTrial(self, request, context):
            self._seen_tuner(request.tuner_id)
            return super().CreateTrial(request, context)

        def UpdateTrial(self, request, context):
            self._seen_trial(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):
            self._seen_trial(request.trial.trial_id)
            return super().EndTrial(request, context)

        def GetTrial(self, request, context):
            self._seen_trial(request.trial_id)
            return super().GetTrial(request, context)

        def silent(self, timeout: float) -> list[tuple[str, str | None]]:
            """Workers not heard from for `timeout` s: forgotten, their trials re-queued."""
            now = time.monotonic()
            out = []
            for tuner_id, seen in list(self.last_seen.items()):
                if tuner_id not in self.gone and now - seen > timeout:
                    out.append((tuner_id, _forget_worker(self.oracle, tuner_id)))
                    self.gone.add(tuner_id)
            return out

        def all_gone(self, timeout: float) -> bool:
            """Every worker that ever connected has stopped, with trials left."""
            return bool(self.gone) and self.gone >= set(self.last_seen) and not self.oracle.ongoing_trials

    _SERVICER.append(WatchedServicer)
    return WatchedServicer


@oracle_module.synchronized
def _forget_worker(oracle, tuner_id: str) -> str | None:
    """Drop a stopped worker; its running trial goes back to the retry queue."""
    trial = oracle.ongoing_trials.pop(tuner_id, None)
    oracle.tuner_ids.discard(tuner_id)
    if trial is None:
        return None
    oracle._retry_queue.append(trial.trial_id)
    oracle.save()
    return trial.trial_id


def note_requeued(project: Path, trial_id: str, tuner_id: str) -> None:
    d = project / f"trial_{trial_id}"
    record = read_record(d)
    if record is not None:
        record.update(status="interrupted", note=f"worker {tuner_id} stopped answering; the trial was queued again")
        write_json(d / TRIAL_RECORD, record)


# --- failures and console lines -----------------------------------------------------------


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


def log_failure(project: Path, trial_id: str, exc: BaseException) -> None:
    """The failure's one traceback, appended to the sweep's log."""
    text = "".join(traceback.format_exception(exc))
    with open(project / SWEEP_LOG, "a") as f:
        f.write(f"--- trial {int(trial_id)} failed at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n{text}\n")


def trial_line(record: Mapping[str, Any], objective: Objective, max_trials: int | None,
               best: Mapping[str, Any] | None) -> str:
    """The console's line for a finished trial."""
    number = int(record["trial_id"])
    of = f"/{max_trials}" if max_trials else ""
    head = f"trial {number}{of}"
    if record.get("status") == "failed":
        return f"{head} failed: {record.get('reason')} (traceback in {SWEEP_LOG})"
    value = record.get("objective")
    text = f"{head} {record.get('status')}: {objective.name} {value:.4g}" if isinstance(value, float) else head
    epochs = record.get("epochs_run")
    start = record.get("initial_epoch") or 0
    text += f" | epochs {start + 1}-{start + epochs} of {record.get('budget')}" if epochs else ""
    text += f" | {record.get('seconds', 0):.1f} s"
    if best is not None:
        text += f" | best {best['objective']:.4g} (trial {int(best['trial_id'])})"
    shown = ", ".join(f"{k}={_short(v)}" for k, v in record.get("hyperparameters", {}).items())
    return f"{text} | {shown}" if shown else text


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


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
    """The record with the best objective among trials that finished training
    (completed, or stopped by the median rule)."""
    best = None
    for record in all_records(project_dir).values():
        if record.get("status") not in ("completed", "stopped") or record["trial_id"] == exclude:
            continue
        value = record.get("objective")
        if value is None or not math.isfinite(value):
            continue
        if best is None or _better(value, best["objective"], direction):
            best = record
    return best


def make_oracle(tuner: str, *, objective: Objective, max_trials: int | None, seed: int, max_epochs: int,
                factor: int = 3, max_failures: int | None = 10):
    """A Keras-Tuner oracle by name: random, bayesian, hyperband or grid. It ranks
    trials by the primary objective."""
    common = {"objective": keras_tuner.Objective(objective.name, objective.direction), "seed": seed,
              "max_consecutive_failed_trials": max_failures, "max_retries_per_trial": 0}
    if tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    if tuner == "grid":
        return keras_tuner.oracles.GridSearchOracle(max_trials=max_trials, **common)
    if tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, **common)
        oracle.max_trials = max_trials  # None: Hyperband's own schedule; a number caps it (the plan says so)
        return oracle
    raise ZooError(f"unknown tuner {tuner!r}; use random, bayesian, hyperband or grid")
