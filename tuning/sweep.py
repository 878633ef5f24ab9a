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
from zoo.tuning import results
from zoo.tuning.space import SweepSpace, build_space

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
    def best(self) -> dict[str, Any] | None:
        rows = results.best_rows(self.rows, self.direction, 1)
        return rows[0] if rows else None

    @property
    def best_hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter of the best trial (fixed ones included)."""
        best = self.best
        if best is None:
            raise ZooError(f"sweep {str(self.dir)!r} has no completed trial")
        return {**self.settings.get("fixed", {}), **best["hyperparameters"]}

    def summary(self, n: int = 5) -> str:
        return results.summary(self.rows, self.objective, self.direction, n)

    @classmethod
    def load(cls, sweep_dir: str | Path) -> "Sweep":
        """Reopen a sweep directory (finished or not) and rebuild its trials table."""
        d = Path(sweep_dir)
        try:
            settings = json.loads((d / "sweep.json").read_text())
        except FileNotFoundError:
            raise ZooError(f"{str(d)!r} is not a sweep directory (no sweep.json)") from None
        rows = results.trials_table(d)
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


def _direction(objective: str) -> tuple[str, str]:
    """(metric name, min or max) without importing Keras-Tuner (same rules)."""
    name, _, direction = objective.partition(":")
    if direction:
        if direction not in ("min", "max"):
            raise ZooError(f"objective direction must be min or max, got {direction!r}")
        return name, direction
    base = name.removeprefix("val_")
    if base in ("accuracy", "acc", "auc", "precision", "recall", "binary_accuracy", "categorical_accuracy",
                "sparse_categorical_accuracy", "top_k_categorical_accuracy", "f1_score", "r2_score"):
        return name, "max"
    if base in ("loss", "mse", "mae", "rmse", "mean_squared_error", "mean_absolute_error", "root_mean_squared_error",
                "crossentropy", "hinge", "mape", "msle", "huber"):
        return name, "min"
    raise ZooError(f"cannot tell whether to minimise or maximise {name!r}; write {name}:min or {name}:max")


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


def tune(model: str | ModelSpec, dataset: Any = None, *, tuner: str = "random", max_trials: int = 10,
         objective: str = "val_loss", epochs: int | None = None, seed: int = 0, runs_dir: str | Path = "runs",
         name: str | None = None, restart: bool = False, fixed: Mapping[str, Any] | None = None,
         space: Mapping[str, Any] | None = None, tune_params: Sequence[str] = (), space_file: str | Path | None = None,
         median_stopping: bool = False, median_min_trials: int = 3, median_grace_epochs: int = 1,
         hyperband_factor: int = 3, max_failures: int | None = 10, retrain: bool = True, data_dir: str | None = None,
         split: tuple[float, float, float] | None = None, limit: int | None = None,
         dataset_options: Mapping[str, Any] | None = None, tensorboard: bool = False, verbose: int = 0,
         plots: bool = True, trials_per_process: int | None = None, **hyperparameters: Any) -> Sweep:
    """Search `model`'s hyperparameters on `dataset` with Keras-Tuner.

    `tuner` is random, bayesian, hyperband or grid; `objective` a validation
    metric (val_loss, val_accuracy, val_mae, or NAME:min/NAME:max). The space is
    the spec's declared search space, narrowed or widened by `space` (name ->
    range form or zoo.spec Param), `space_file` (TOML) and `tune_params` (add
    built-in ranges for batch_size, optimizer, ...); `fixed` and
    `**hyperparameters` fix values (taking them out of the search). Each trial
    trains through zoo.training's build/compile and callbacks with seed `seed`.
    `median_stopping` stops trials worse than the median of finished trials at
    the same epoch. With `retrain`, the best hyperparameters are trained again
    by zoo.training into `<sweep dir>/best/`, a normal run directory.
    `trials_per_process` runs that many trials per fresh Python process (the
    sweep resumes in each), which keeps memory bounded over long sweeps.
    """
    call = {k: v for k, v in locals().items() if k not in ("hyperparameters", "trials_per_process")}
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    if tuner not in TUNERS:
        raise ZooError(f"unknown tuner {tuner!r}; use one of {', '.join(TUNERS)}")
    if max_trials < 1:
        raise ZooError(f"max_trials must be at least 1, got {max_trials}")
    all_fixed = {**hyperparameters, **dict(fixed or {})}
    if epochs is not None:
        all_fixed["epochs"] = epochs
    sweep_space = build_space(spec, fixed=all_fixed, ranges=space, tune=tuple(tune_params), space_file=space_file)
    if not sweep_space.params:
        raise ZooError(f"nothing to search: every hyperparameter of {spec.name!r} is fixed; give a range with --space")
    objective_name, direction = _direction(objective)
    dataset_name = dataset if isinstance(dataset, str) else getattr(getattr(dataset, "spec", None), "name", None)
    dataset_name = dataset_name or spec.default_dataset
    if dataset_name is None:
        raise ZooError(f"model {spec.name!r} has no default dataset; give one with --dataset")
    sweep_dir = Path(runs_dir) / name if name else default_dir(runs_dir, spec.name, dataset_name, tuner)
    settings = {"model": spec.name, "dataset": dataset_name, "tuner": tuner, "objective": objective,
                "objective_name": objective_name, "direction": direction, "seed": seed,
                "split": list(split) if split else None, "limit": limit, "dataset_options": dict(dataset_options or {}),
                "fingerprint": sweep_space.fingerprint(), "space": sweep_space.describe(),
                "fixed": dict(sweep_space.fixed), "median_stopping": bool(median_stopping),
                "hyperband_factor": hyperband_factor if tuner == "hyperband" else None, "max_trials": max_trials,
                "log_scale": [k for k, p in sweep_space.params.items() if getattr(p, "sampling", "") == "log"]}
    if restart and not _is_worker() and sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    check_resume(sweep_dir, settings)
    if trials_per_process and not _is_worker():
        call.update(model=spec.name, dataset=dataset_name if dataset is None or isinstance(dataset, str) else dataset,
                    runs_dir=str(sweep_dir.parent), name=sweep_dir.name, restart=False, **hyperparameters)
        return _tune_in_processes(call, sweep_dir, max_trials, trials_per_process)

    from zoo.data import Dataset
    from zoo.data import load as load_dataset
    from zoo.tuning import tuner as kt

    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset_name, batch_size=int(sweep_space.fixed["batch_size"]), split=split, seed=seed,
                               data_dir=data_dir, limit=limit, **dict(dataset_options or {}))
    spec.check_data(dataset.spec)
    oracle = kt.make_oracle(tuner, objective=kt.make_objective(objective_name, direction), max_trials=max_trials, seed=seed + 1,
                            max_epochs=int(sweep_space.fixed["epochs"]), factor=hyperband_factor,
                            max_failures=max_failures)
    hypermodel = kt.ZooHyperModel(spec, sweep_space, dataset)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not _is_worker():
        kt.write_json(sweep_dir / "sweep.json", settings)
    search = kt.ZooTuner(oracle, hypermodel, seed=seed, median_stopping=median_stopping,
                         median_min_trials=median_min_trials, median_grace_epochs=median_grace_epochs,
                         tensorboard=tensorboard, verbose="auto" if verbose >= 2 else 0,
                         directory=str(sweep_dir.parent), project_name=sweep_dir.name, overwrite=False)
    try:
        search.search(verbose=1 if verbose >= 1 else 0)
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
                       f" See {sweep_dir / 'trials.csv'}; narrow the space and re-run, or raise --max-failures.") from None
    finally:
        if not _is_worker():
            rows = results.trials_table(sweep_dir)
            results.write_table(rows, sweep_dir)
    if _is_worker():
        return Sweep(sweep_dir, objective_name, direction, results.trials_table(sweep_dir), settings)
    search.prune(final=True)
    rows = results.trials_table(sweep_dir)
    results.write_table(rows, sweep_dir)
    if plots:
        results.plot(rows, sweep_dir, objective_name, direction, log_scale=settings["log_scale"])
    sweep = Sweep(sweep_dir, objective_name, direction, rows, settings)
    if retrain and sweep.best is not None:
        sweep.best_run = retrain_best(sweep, spec, dataset, seed=seed, verbose=verbose)
    return sweep


def _tune_in_processes(call: dict[str, Any], sweep_dir: Path, max_trials: int, per_process: int) -> Sweep:
    """Run the sweep `per_process` trials at a time, each batch in a new process
    that resumes it. TensorFlow keeps a few MiB of every finished trial that only
    the end of the process gives back (measured: about +7 MiB per trial), so a
    long sweep in one process grows; this way its memory stays bounded."""
    import subprocess

    if per_process < 1:
        raise ZooError(f"trials_per_process must be at least 1, got {per_process}")
    try:
        json.dumps(call)
    except TypeError:
        raise ZooError("trials_per_process needs plain arguments: a dataset name, ranges as strings") from None
    code = "import json, sys; from zoo.tuning.sweep import _child; _child(json.loads(sys.argv[1]))"
    while True:
        done = len(results.trials_table(sweep_dir)) if sweep_dir.exists() else 0
        cap = min(max_trials, done + per_process)
        last = cap >= max_trials
        part = {**call, "max_trials": cap, "retrain": call["retrain"] and last, "plots": call["plots"] and last}
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(part)], stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("zoo: error: ")]
            reason = errors[-1].removeprefix("zoo: error: ") if errors else (lines[-1] if lines else f"exit {proc.returncode}")
            raise ZooError(f"sweep process stopped: {reason}")
        if last:
            return Sweep.load(sweep_dir)


def _child(call: dict[str, Any]) -> None:
    """One batch of trials of `_tune_in_processes`, in its own process."""
    try:
        tune(**call)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        sys.exit(2)


def retrain_best(sweep: Sweep, spec: ModelSpec, dataset: Any, *, seed: int = 0, verbose: int = 0):
    """Train the best trial's hyperparameters with zoo.training into <sweep>/best/.

    A Hyperband trial trained `hyperband_epochs` epochs: the run trains as many.
    Kept when best/ already holds a finished run of the same trial."""
    from zoo.tuning.tuner import write_json
    from zoo.training import Run, train

    best = sweep.best
    hp = sweep.best_hyperparameters
    if best.get("hyperband_epochs"):
        hp["epochs"] = int(best["hyperband_epochs"])
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
    run = train(spec, dataset, runs_dir=sweep.dir, run_name="best", seed=seed,
                verbose="auto" if verbose >= 2 else 0, **hp)
    write_json(marker, {"trial_id": best["trial_id"], "objective": best["objective"], "hyperparameters": hp,
                        "run_dir": str(run_dir), "test_metrics": {k: v for k, v in run.metrics.items()
                                                                   if k.startswith("test_")}})
    return run


def report(sweep_dir: str | Path, *, plots: bool = True, out=sys.stdout) -> Sweep:
    """Rebuild the trials table, plots and summary of a sweep directory."""
    sweep = Sweep.load(sweep_dir)
    results.write_table(sweep.rows, sweep.dir)
    if plots:
        results.plot(sweep.rows, sweep.dir, sweep.objective, sweep.direction, log_scale=sweep.settings.get("log_scale", ()))
    return sweep
