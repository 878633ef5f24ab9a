"""`tune()`: one resumable Keras-Tuner sweep of a registered model on a dataset.

A sweep lives in one directory (default runs/tune-<model>-<dataset>-<tuner>/):

    sweep.json                what was asked (space, objective, tuner, seed, data)
    oracle.json, tuner0.json  Keras-Tuner's state (written atomically)
    trial_<id>/trial.json     Keras-Tuner's record of a trial
    trial_<id>/zoo_trial.json what ran: hyperparameters, metrics, epochs, seconds,
                              status, failure reason
    trial_<id>/history.csv    per-epoch metrics (the training path's CSVLogger)
    trial_<id>/model.keras    only in the best trial's directory
    trials.csv, trials.json   the trials table
    objective.png, hyperparameters.png
    best.json                 the best trial and its run directory
    best/                     the best hyperparameters retrained by zoo.train
                              (a normal run directory: zoo.training.Run.load, zoo export)

Re-running the same call resumes: finished trials are kept, the trial that was
running when the sweep stopped is run again. A changed space, objective, tuner,
seed or dataset is refused unless `restart=True`. Raising `max_trials` extends
a finished sweep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.registry import get_spec
from zoo.spec import ModelSpec
from zoo.tuning import objectives, plan, results
from zoo.tuning.objectives import Objective
from zoo.tuning.space import SweepSpace, build_space, read_toml

TUNERS = ("random", "bayesian", "hyperband", "grid")
#: settings of sweep.json that a resumed sweep must keep
KEPT_SETTINGS = ("model", "dataset", "tuner", "objective", "seed", "split", "limit", "dataset_options", "fingerprint",
                 "median_stopping", "hyperband_factor")


@dataclass
class Sweep:
    """A finished (or loaded) sweep: its directory, trials table and best trial."""

    dir: Path
    objective: str
    direction: str
    rows: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    best_run: Any = None  # zoo.training.Run of the retrained best model

    @property
    def objectives(self) -> list[Objective]:
        """Every objective (the first guides the tuner)."""
        return objectives.parse(self.settings.get("objective") or f"{self.objective}:{self.direction}")

    @property
    def best(self) -> dict[str, Any] | None:
        rows = results.best_rows(self.rows, self.direction, 1)
        return rows[0] if rows else None

    @property
    def pareto(self) -> list[dict[str, Any]]:
        """The trials no other trial beats on every objective (all of them when there is one objective)."""
        return [r for r in self.rows if r.get("pareto")]

    @property
    def best_hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter of the best trial (fixed ones included; per-layer
        widths as the list the model was built with)."""
        best = self.best
        if best is None:
            raise ZooError(f"sweep {str(self.dir)!r} has no completed trial")
        return {**self.settings.get("fixed", {}), **best["values"]}

    def summary(self, n: int = 5) -> str:
        return results.summary(self.rows, self.objectives, n)

    @classmethod
    def load(cls, sweep_dir: str | Path) -> "Sweep":
        """Reopen a sweep directory (finished or not) and rebuild its trials table."""
        d = Path(sweep_dir)
        try:
            settings = json.loads((d / "sweep.json").read_text())
        except FileNotFoundError:
            raise ZooError(f"{str(d)!r} is not a sweep directory (no sweep.json)") from None
        except json.JSONDecodeError:
            raise ZooError(f"{d / 'sweep.json'} is corrupt; start the sweep over with --restart") from None
        objs = objectives.parse(settings["objective"])
        rows = results.trials_table(d, objs)
        best_run = None
        if (d / "best" / "metrics.json").exists():
            from zoo.training import Run

            best_run = Run.load(d / "best", with_model=False)
        return cls(d, settings["objective_name"], settings["direction"], rows, settings, best_run)


def default_dir(runs_dir: str | Path, model: str, dataset: str, tuner: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.split(":", 1)[-1]).name or dataset)
    return Path(runs_dir) / f"tune-{model}-{slug}-{tuner}"


def _is_worker() -> bool:
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def check_resume(sweep_dir: Path, settings: Mapping[str, Any]) -> None:
    """Refuse to resume a sweep whose settings changed (the message says how)."""
    try:
        old = json.loads((sweep_dir / "sweep.json").read_text())
    except FileNotFoundError:
        return
    except json.JSONDecodeError:
        raise ZooError(f"{sweep_dir / 'sweep.json'} is corrupt; start over with --restart") from None
    changes = []
    for key in KEPT_SETTINGS:
        if old.get(key) != settings.get(key):
            if key == "fingerprint":
                before, after = old.get("space", {}), settings.get("space", {})
                diff = [f"{k}: {before.get(k, '-')} -> {after.get(k, '-')}" for k in sorted({*before, *after})
                        if before.get(k) != after.get(k)]
                fixed_before, fixed_after = old.get("fixed", {}), settings.get("fixed", {})
                diff += [f"{k}={fixed_before.get(k)!r} -> {fixed_after.get(k)!r}"
                         for k in sorted({*fixed_before, *fixed_after}) if fixed_before.get(k) != fixed_after.get(k)]
                changes.append("the search space (" + "; ".join(diff) + ")")
            else:
                changes.append(f"{key} ({old.get(key)!r} -> {settings.get(key)!r})")
    if changes:
        raise ZooError(f"sweep {str(sweep_dir)!r} was started with other settings; changed: {', '.join(changes)}. "
                       "Re-run with the original settings to resume, use --restart (restart=True) to start it over, "
                       "or give another --name.")


def tune(model: str | ModelSpec, dataset: Any = None, *, tuner: str = "random", max_trials: int | None = None,
         objective: Any = "val_loss", epochs: int | None = None, seed: int = 0, runs_dir: str | Path = "runs",
         name: str | None = None, restart: bool = False, fixed: Mapping[str, Any] | None = None,
         space: Mapping[str, Any] | None = None, tune_params: Sequence[str] = (), space_file: str | Path | None = None,
         median_stopping: bool = False, median_min_trials: int = 3, median_grace_epochs: int = 1,
         hyperband_factor: int = 3, max_failures: int | None = 10, retrain: bool = True, data_dir: str | None = None,
         split: tuple[float, float, float] | None = None, limit: int | None = None,
         dataset_options: Mapping[str, Any] | None = None, tensorboard: bool = False, verbose: int = 0,
         plots: bool = True, trials_per_process: int | None = None, worker_timeout: float = 60.0,
         pause_after: int | None = None, **hyperparameters: Any) -> Sweep | None:
    """Search `model`'s hyperparameters on `dataset` with Keras-Tuner.

    `tuner` is random, bayesian, hyperband or grid. `max_trials` defaults to the
    tuner's whole budget: 10 random or Bayesian trials, every point of the grid,
    Hyperband's full bracket schedule for `epochs`; a smaller number is said
    before the sweep starts, with what it cuts.

    `objective` is a metric name (val_loss, val_accuracy, val_auc, val_f1, ...,
    or NAME:min / NAME:max), `params` or `inference_time`, a function of an
    epoch's logs, a zoo.tuning.Objective, or a list of them (a multi-objective
    sweep: the first guides the tuner, the Pareto front over all is reported).
    Metrics it names are compiled into the trials' models.

    The space is the spec's declared search space (the grid tuner: only the
    ranges named here, when any are), narrowed or widened by `space` (name ->
    range form or zoo.spec Param), `space_file` (TOML) and `tune_params` (add
    built-in ranges for batch_size, optimizer, ...); `fixed` and
    `**hyperparameters` fix values (taking them out of the search). Each trial
    trains through zoo.training's build/compile and callbacks with seed `seed`
    and keeps the weights of its best epoch by the objective.
    `median_stopping` stops trials worse than the median of finished trials at
    the same epoch. With `retrain`, the best hyperparameters are trained again
    by zoo.training into `<sweep dir>/best/`, a normal run directory, keeping
    the epoch best by the objective. `trials_per_process` runs that many trials
    per fresh Python process (the sweep resumes in each), which keeps memory
    bounded over long sweeps. `verbose`: -1 quiet, 0 the plan and a line per
    trial, 1 a line per epoch too, 2 progress bars. `pause_after` stops this
    call after that many trials and returns None (the sweep resumes later).
    """
    call = {k: v for k, v in locals().items() if k not in ("hyperparameters", "trials_per_process")}
    say = printer() if verbose >= 0 else (lambda line: None)
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    if tuner not in TUNERS:
        raise ZooError(f"unknown tuner {tuner!r}; use one of {', '.join(TUNERS)}")
    objs = objectives.parse(objective)
    objectives.check(objs, None)
    primary = objs[0]
    if not primary.per_epoch and (median_stopping or tuner == "hyperband"):
        raise ZooError(f"{'median stopping' if median_stopping else 'hyperband'} ranks trials epoch by epoch: put a "
                       f"validation metric first (e.g. --objective val_accuracy --objective {primary.name})")
    all_fixed = {**hyperparameters, **dict(fixed or {})}
    if epochs is not None:
        all_fixed["epochs"] = epochs
    named = bool(space or tune_params or (space_file and read_toml(space_file)[1]))
    sweep_space = build_space(spec, fixed=all_fixed, ranges=space, tune=tuple(tune_params), space_file=space_file,
                              only_named=tuner == "grid" and named)
    if not sweep_space.params:
        raise ZooError(f"nothing to search: every hyperparameter of {spec.name!r} is fixed; give a range with --space")
    dataset_name = dataset if isinstance(dataset, str) else getattr(getattr(dataset, "spec", None), "name", None)
    dataset_name = dataset_name or spec.default_dataset
    if dataset_name is None:
        raise ZooError(f"model {spec.name!r} has no default dataset; give one with --dataset")
    if dataset is None or isinstance(dataset, str):
        from zoo.data import check as check_dataset

        check_dataset(dataset_name, data_dir)  # before TensorFlow: seconds sooner
    sweep_dir = Path(runs_dir) / name if name else default_dir(runs_dir, spec.name, dataset_name, tuner)
    settings = {"model": spec.name, "dataset": dataset_name, "tuner": tuner,
                "objective": [o.spelled() for o in objs], "objective_name": primary.name,
                "direction": primary.direction, "seed": seed,
                "split": list(split) if split else None, "limit": limit, "dataset_options": dict(dataset_options or {}),
                "fingerprint": sweep_space.fingerprint(), "space": sweep_space.describe(),
                "fixed": dict(sweep_space.fixed), "columns": sweep_space.column_names(),
                "median_stopping": bool(median_stopping),
                "hyperband_factor": hyperband_factor if tuner == "hyperband" else None, "max_trials": max_trials,
                "log_scale": [k for k, p in sweep_space.params.items() if getattr(p, "sampling", "") == "log"]}
    if restart and not _is_worker() and sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    check_resume(sweep_dir, settings)
    if trials_per_process and not _is_worker():
        if any(o.fn is not None for o in objs):
            raise ZooError("trials_per_process needs objectives by name (a function cannot cross into a new process)")
        call.update(model=spec.name, dataset=dataset_name if dataset is None or isinstance(dataset, str) else dataset,
                    runs_dir=str(sweep_dir.parent), name=sweep_dir.name, restart=False, objective=settings["objective"],
                    **hyperparameters)
        return _tune_in_processes(call, sweep_dir, trials_per_process)

    from zoo.data import Dataset
    from zoo.data import load as load_dataset
    from zoo.training import task_for
    from zoo.tuning import tuner as kt

    the_plan = plan.make(tuner, sweep_space, max_trials, int(sweep_space.fixed["epochs"]), hyperband_factor)
    for line in [*the_plan.lines, *sweep_space.notes]:
        say(line)
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset_name, batch_size=int(sweep_space.fixed["batch_size"]), split=split, seed=seed,
                               data_dir=data_dir, limit=limit, **dict(dataset_options or {}))
    spec.check_data(dataset.spec)
    metric_names = _check_objectives(objs, spec, sweep_space, dataset, task_for(spec, dataset.spec))
    oracle = kt.make_oracle(tuner, objective=primary, max_trials=the_plan.max_trials, seed=seed + 1,
                            max_epochs=int(sweep_space.fixed["epochs"]), factor=hyperband_factor,
                            max_failures=max_failures)
    hypermodel = kt.ZooHyperModel(spec, sweep_space, dataset, metrics=metric_names)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not _is_worker():
        kt.write_json(sweep_dir / "sweep.json", {**settings, "plan": the_plan.lines})
    search = kt.ZooTuner(oracle, hypermodel, objectives=objs, seed=seed, median_stopping=median_stopping,
                         median_min_trials=median_min_trials, median_grace_epochs=median_grace_epochs,
                         tensorboard=tensorboard, verbose={1: 2, 2: "auto"}.get(verbose, 0), say=say,
                         worker_timeout=worker_timeout, planned_trials=the_plan.max_trials or the_plan.trials,
                         pause_after=pause_after,
                         directory=str(sweep_dir.parent), project_name=sweep_dir.name, overwrite=False)
    try:
        search.search(verbose=0)
    except kt.SweepPaused:
        return None
    except kt.EnvironmentBroken as exc:
        if isinstance(exc.__cause__, kt.ObjectiveMissing):
            raise ZooError(f"sweep stopped: {exc}") from None
        raise ZooError(f"sweep stopped: {exc}. This is an environment problem, not a bad trial: fix it (e.g. "
                       "install the missing package) and re-run the same command to resume.") from None
    except RuntimeError as exc:
        if "consecutive failures" not in str(exc):
            raise
        reason = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise ZooError(f"sweep stopped after {max_failures} failed trials in a row (last: {reason[-1] if reason else '?'})."
                       f" See {sweep_dir / 'trials.csv'} and {sweep_dir / kt.SWEEP_LOG}; narrow the space and re-run, "
                       "or raise --max-failures.") from None
    finally:
        if not _is_worker():
            results.write_table(results.trials_table(sweep_dir, objs), sweep_dir)
    if _is_worker():
        return Sweep(sweep_dir, primary.name, primary.direction, results.trials_table(sweep_dir, objs), settings)
    search.prune(final=not search.unfinished)
    rows = results.trials_table(sweep_dir, objs)
    results.write_table(rows, sweep_dir)
    if plots:
        results.plot(rows, sweep_dir, objs, log_scale=settings["log_scale"])
    if search.unfinished:
        left = ", ".join(str(int(t)) for t in search.unfinished)
        raise ZooError(f"every worker stopped; trials left to run: {left}. Start the chief and the workers again with "
                       "the same commands to finish the sweep")
    sweep = Sweep(sweep_dir, primary.name, primary.direction, rows, settings)
    if retrain and sweep.best is not None:
        sweep.best_run = retrain_best(sweep, spec, dataset, seed=seed, verbose=verbose, metrics=metric_names)
    return sweep


def _check_objectives(objs: Sequence[Objective], spec: ModelSpec, space: SweepSpace, dataset: Any,
                      task: str) -> list[str]:
    """The metric names to compile for the objectives; a ZooError before any trial
    trains when the model cannot report one. A spec with its own compile_args
    (its own metrics) is asked by compiling a model and evaluating two examples."""
    if spec.compile_args is None:
        return objectives.check(objs, task)
    from zoo.spec import UNSUPERVISED_TASKS
    from zoo.training import build_and_compile

    model = build_and_compile(spec, dict(space.fixed), dataset.spec)
    x, y = dataset.arrays["val"]
    logs = model.evaluate(x[:2], x[:2] if task in UNSUPERVISED_TASKS else y[:2], return_dict=True, verbose=0)
    reported = {"loss", *logs}
    missing = [n for n in objectives.metric_names_needed(objs) if n not in reported]
    if missing:
        raise ZooError(f"objective {missing[0]!r} is not a metric {spec.name!r} reports; it reports "
                       f"{', '.join(sorted(reported))} (as val_NAME on the validation split)")
    return []


def printer(stream=None):
    """A `say` that prints a line and flushes (the sweep's console voice)."""
    def say(line: str) -> None:
        print(line, file=stream or sys.stdout, flush=True)
    return say


def _tune_in_processes(call: dict[str, Any], sweep_dir: Path, per_process: int) -> Sweep:
    """Run the sweep `per_process` trials at a time, each batch in a new process
    that resumes it; the process whose batch ends the sweep also writes its
    table, plots and best model. TensorFlow keeps a few MiB of every finished
    trial that only the end of the process gives back (measured: about +7 MiB per
    trial), so a long sweep in one process grows; this way its memory stays
    bounded. A child ends when this process ends, however it ends (see _child)."""
    import subprocess

    if per_process < 1:
        raise ZooError(f"trials_per_process must be at least 1, got {per_process}")
    try:
        json.dumps(call)
    except TypeError:
        raise ZooError("trials_per_process needs plain arguments: a dataset name, ranges as strings") from None
    code = "import json, sys; from zoo.tuning.sweep import _child; _child(json.loads(sys.argv[1]), int(sys.argv[2]))"
    part = {**call, "pause_after": per_process}
    while True:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(part), str(os.getpid())], stderr=subprocess.PIPE,
                              text=True)
        if proc.returncode == PAUSED:
            continue
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("zoo: error: ")]
            reason = errors[-1].removeprefix("zoo: error: ") if errors else (lines[-1] if lines else f"exit {proc.returncode}")
            raise ZooError(f"sweep process stopped: {reason}")
        return Sweep.load(sweep_dir)


#: a child process's exit status when it ran its batch and the sweep goes on
PAUSED = 10


def _child(call: dict[str, Any], parent: int) -> None:
    """One batch of trials of `_tune_in_processes`, in its own process, which
    ends itself as soon as its parent is gone (kill -9 included)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="zoo-parent-watch", daemon=True).start()
    try:
        sweep = tune(**call)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(PAUSED if sweep is None else 0)


def retrain_best(sweep: Sweep, spec: ModelSpec, dataset: Any, *, seed: int = 0, verbose: int = 0,
                 metrics: Sequence[str] = ()):
    """Train the best trial's hyperparameters with zoo.training into <sweep>/best/,
    with the trial's seed, keeping the epoch best by the sweep's objective (as
    the trial did), so best/ is the best trial.

    A Hyperband trial trained up to its epoch budget: the run trains as many.
    Kept when best/ already holds a finished run of the same trial."""
    from zoo.training import Run, train
    from zoo.tuning.tuner import write_json

    best = sweep.best
    hp = sweep.best_hyperparameters
    if best.get("budget"):
        hp["epochs"] = int(best["budget"])
    primary = sweep.objectives[0]
    run_dir = sweep.dir / "best"
    marker = sweep.dir / "best.json"
    try:
        previous = json.loads(marker.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        previous = None
    if previous and previous.get("trial_id") == best["trial_id"] and (run_dir / "metrics.json").exists():
        return Run.load(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run = train(spec, dataset, runs_dir=sweep.dir, run_name="best", seed=seed, verbose="auto" if verbose >= 2 else 0,
                metrics=metrics, monitor=primary.spelled() if primary.per_epoch else None, **hp)
    write_json(marker, {"trial_id": best["trial_id"], "objective": primary.name,
                        "trial_value": best["objective"], "retrained_value": run.metrics.get("monitor", {}).get("best"),
                        "hyperparameters": hp, "run_dir": str(run_dir),
                        "test_metrics": {k: v for k, v in run.metrics.items() if k.startswith("test_")}})
    return run


def report(sweep_dir: str | Path, *, plots: bool = True) -> Sweep:
    """Rebuild a sweep's trials table and plots, and add what explains it:
    hyperparameter importances (importance.json and .png), a parallel
    coordinates plot and every trial's learning curve on one plot."""
    sweep = Sweep.load(sweep_dir)
    results.write_table(sweep.rows, sweep.dir)
    if plots:
        results.plot(sweep.rows, sweep.dir, sweep.objectives, log_scale=sweep.settings.get("log_scale", ()))
        results.explain(sweep.rows, sweep.dir, sweep.objectives[0])
    return sweep
