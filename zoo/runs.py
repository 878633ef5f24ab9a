"""Past runs, listed and compared (`zoo runs`, `zoo compare`).

Reads run directories only (config.json, metrics.json, history.json), so listing
and comparing finished runs import no TensorFlow; `compare(..., vary=...)` trains
the runs it compares first, one per value, with the same seed.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


@dataclass
class RunInfo:
    """What a run directory says about itself, without loading its model."""

    dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: dict[str, list[float]]

    @property
    def name(self) -> str:
        return self.dir.name if self.dir.name != "best" else f"{self.dir.parent.name}/best"

    @property
    def status(self) -> str:
        if self.metrics.get("status"):
            return str(self.metrics["status"])
        return "interrupted" if (self.dir / "backup").exists() else "unfinished"

    def changed(self) -> dict[str, Any]:
        """Hyperparameters that differ from the model's defaults (what makes this run this run)."""
        try:
            from zoo.registry import get_spec

            defaults = get_spec(self.config["model"]).hyperparameters()
        except ZooError:
            defaults = {}
        hp = self.config.get("hyperparameters", {})
        if defaults.get("learning_rate") == "auto":  # the rate auto gave this optimizer is no change
            from zoo.training import DEFAULT_LEARNING_RATES

            defaults["learning_rate"] = DEFAULT_LEARNING_RATES.get(hp.get("optimizer"), "auto")
        return {k: v for k, v in hp.items() if k not in defaults or defaults[k] != v}


def read(run_dir: str | Path) -> RunInfo | None:
    """A run directory's files, or None when it is not one."""
    d = Path(run_dir)
    try:
        config = json.loads((d / "config.json").read_text())
    except (OSError, ValueError):
        return None
    out = []
    for name in ("metrics.json", "history.json"):
        try:
            out.append(json.loads((d / name).read_text()))
        except (OSError, ValueError):
            out.append({})
    return RunInfo(d, config, out[0], out[1])


def find(runs_dir: str | Path = "runs") -> list[RunInfo]:
    """Every run under `runs_dir` (and the best/ run of every sweep there), newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise ZooError(f"no runs directory {str(root)!r}; train something first (zoo train ...) or give --runs-dir")
    found = [read(d) for d in [*root.iterdir(), *root.glob("*/best"), *root.glob("compare-*/*")] if d.is_dir()]
    runs = [r for r in found if r is not None]
    return sorted(runs, key=lambda r: r.config.get("started", ""), reverse=True)


def headline(run: RunInfo) -> tuple[str, str]:
    """(test figure, baseline) as text: accuracy for classifiers, mae for regression, mse for reconstruction."""
    for metric in ("accuracy", "mae", "mse"):
        value, base = run.metrics.get(f"test_{metric}"), run.metrics.get(f"baseline_test_{metric}")
        if isinstance(value, (int, float)):
            return f"{metric} {value:.4f}", (f"{base:.4f}" if isinstance(base, (int, float)) else "-")
    return "-", "-"


def age(started: str) -> str:
    try:
        seconds = time.time() - time.mktime(time.strptime(started, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def table(runs: Sequence[RunInfo]) -> list[list[str]]:
    """Rows for `zoo runs`: run, model, dataset, what changed, test figure, baseline, status, age."""
    rows = []
    for r in runs:
        changed = ", ".join(f"{k}={_short(v)}" for k, v in r.changed().items())
        figure, base = headline(r)
        rows.append([r.name, r.config.get("model", "?"), r.config.get("dataset", "?"), changed or "defaults",
                     figure, base, r.status, age(r.config.get("started", ""))])
    return rows


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


# --- comparing ------------------------------------------------------------------------


def differences(runs: Sequence[RunInfo]) -> dict[str, list[Any]]:
    """What differs between the runs: model, dataset, seed and every hyperparameter
    whose value is not the same in all of them."""
    fields: dict[str, list[Any]] = {}
    for key in ("model", "dataset", "seed"):
        values = [r.config.get(key) for r in runs]
        if len({json.dumps(v, default=str) for v in values}) > 1:
            fields[key] = values
    names = list(dict.fromkeys(k for r in runs for k in r.config.get("hyperparameters", {})))
    for name in names:
        values = [r.config.get("hyperparameters", {}).get(name) for r in runs]
        if len({json.dumps(v, default=str) for v in values}) > 1:
            fields[name] = values
    return fields


def compare(runs: Sequence[RunInfo], metric: str | None, out: Path, title: str = "") -> tuple[Path, list[list[str]]]:
    """compare.png (each run's `metric` per epoch: validation solid, training
    dashed; the epoch each model kept marked) and the rows of the comparison table."""
    if len(runs) < 2:
        raise ZooError("compare needs at least two runs")
    metric = metric or _common_metric(runs)
    base = metric.removeprefix("val_")
    missing = [r.name for r in runs if f"val_{base}" not in r.history and base not in r.history]
    if missing:
        known = sorted({k for r in runs for k in r.history})
        raise ZooError(f"runs {', '.join(missing)} have no {metric!r} in their history; known: {', '.join(known)}")
    diff = differences(runs)
    labels = [", ".join(f"{k}={_short(v[i])}" for k, v in diff.items()) or r.name for i, r in enumerate(runs)]
    from zoo.plots import comparison

    comparison({label: r.history for label, r in zip(labels, runs)}, base,
               {label: (r.metrics.get("monitor") or {}).get("kept_epoch") for label, r in zip(labels, runs)},
               out, title=title or f"{base} per epoch")
    rows = []
    for label, r in zip(labels, runs):
        figure, baseline = headline(r)
        final = r.history.get(f"val_{base}", r.history.get(base, []))
        rows.append([r.name, label, f"{final[-1]:.4f}" if final else "-", figure, baseline,
                     str(r.metrics.get("epochs_run", "-")), f"{r.metrics.get('train_seconds', 0):.1f}"])
    return out, rows


def _common_metric(runs: Sequence[RunInfo]) -> str:
    return "val_accuracy" if all("val_accuracy" in r.history for r in runs) else "val_loss"


def vary_values(pairs: Sequence[str]) -> list[dict[str, str]]:
    """`--vary optimizer=sgd,adam --vary dropout=0,0.5` as every combination of the values."""
    axes = []
    for pair in pairs:
        name, eq, values = pair.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not name.strip() or not items:
            raise ZooError(f"--vary takes NAME=V1,V2,..., got {pair!r}")
        axes.append([(name.strip(), v) for v in items])
    return [dict(combo) for combo in itertools.product(*axes)]


def train_variants(model: str, dataset: str | None, variants: Sequence[Mapping[str, str]], runs_dir: str | Path,
                   say, **train_options: Any) -> list[RunInfo]:
    """One run per variant, the same seed and everything else equal, under
    runs_dir/compare-MODEL-DATASET-NAMES/VALUES/; a variant that already finished
    there is reused."""
    from zoo.training import train

    names = "-".join(dict.fromkeys(k for v in variants for k in v))
    group = Path(runs_dir) / f"compare-{model}-{Path(str(dataset or 'default')).name}-{names}"
    out = []
    for i, variant in enumerate(variants, start=1):
        label = "_".join(f"{v}" for v in variant.values()).replace("/", "_")
        d = group / label
        done = read(d)
        if done is not None and done.status == "completed":
            say(f"[{i}/{len(variants)}] {label}: already trained ({d})")
        else:
            say(f"[{i}/{len(variants)}] training {model} with {', '.join(f'{k}={v}' for k, v in variant.items())}")
            run = train(model, dataset, runs_dir=group, run_name=label, verbose=0, **{**train_options, **variant})
            figure = run.verdict()
            say(f"    {figure['metric']} {figure['value']:.4f}" if figure else "    done")
        out.append(read(d))
    return out


def export_tensorboard(runs: Sequence[RunInfo], out: str | Path) -> Path:
    """Every run's per-epoch history and hyperparameters as TensorBoard event
    files under out/RUN/, so `tensorboard --logdir out` compares all of them
    (scalars and the HParams dashboard), also runs trained without --tensorboard."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    root = Path(out)
    for run in runs:
        hp = {k: v for k, v in {"model": run.config.get("model"), "dataset": run.config.get("dataset"),
                                **run.config.get("hyperparameters", {})}.items()
              if isinstance(v, (bool, int, float, str))}
        writer = tf.summary.create_file_writer(str(root / run.name.replace("/", "_")))
        with writer.as_default():
            hparams_api.hparams(hp, trial_id=run.name)
            for key, values in run.history.items():
                for epoch, value in enumerate(values):
                    tf.summary.scalar(key, value, step=epoch)
            for key, value in run.metrics.items():
                if key.startswith("test_") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value, step=len(run.history.get("loss", [])))
        writer.close()
    return root
