"""Two lecture experiments as commands: the learning-rate range test
(`zoo lr-find`, Smith 2017) and learning curves over the training-set size
(`zoo learning-curve`, the idea of scikit-learn's learning_curve).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: the range test sweeps the learning rate from LR_START to LR_END, exponentially
LR_START, LR_END = 1e-7, 10.0
#: it stops once the smoothed loss exceeds this many times its minimum
DIVERGED = 4.0
#: exponential smoothing of the per-batch loss (with bias correction), as fastai does
SMOOTHING = 0.98


def lr_find(model: str, dataset: str | None = None, *, runs_dir: str | Path = "runs", seed: int = 0,
            steps: int | None = None, start: float = LR_START, end: float = LR_END, data_dir: str | None = None,
            limit: int | None = None, split: Any = None, dataset_options: dict | None = None,
            **hyperparameters: Any) -> dict[str, Any]:
    """The learning-rate range test (Smith 2017, "Cyclical learning rates", section
    3.3): train from fresh weights while the rate grows exponentially from `start`
    to `end` over `steps` batches (at least 100; whole epochs of the training
    split), record each batch's loss, stop when the smoothed loss has grown to
    DIVERGED times its minimum. Suggests the rate where the smoothed loss falls
    fastest (the steepest descent against log rate), and notes the minimum's
    rate / 10 (the other common rule). Writes lr_find.png and lr_find.json."""
    from zoo.data import check, load
    from zoo.registry import get_spec
    from zoo.spec import UNSUPERVISED_TASKS
    from zoo.training import build_and_compile, resolve_hyperparameters, set_seed, task_for

    if not 0 < start < end:
        raise ZooError(f"the range test needs 0 < start < end, got {start} and {end}")
    spec = get_spec(model)
    hp = resolve_hyperparameters(spec, hyperparameters)
    name = dataset or spec.default_dataset
    check(name or "", data_dir)
    set_seed(seed)
    data = load(name, batch_size=int(hp["batch_size"]), seed=seed, data_dir=data_dir, limit=limit, split=split,
                **dict(dataset_options or {}))
    spec.check_data(data.spec)
    hp["lr_schedule"] = "constant"
    net = build_and_compile(spec, hp, data.spec)
    targets = "inputs" if task_for(spec, data.spec) in UNSUPERVISED_TASKS else "labels"
    x, y = data.pairs("train", targets)
    per_epoch = math.ceil(len(x) / int(hp["batch_size"]))
    steps = int(steps or max(100, per_epoch))
    rates, losses = [], []
    recorder = _range_test(start, end, steps, rates, losses)
    net.fit(x, y, batch_size=int(hp["batch_size"]), epochs=math.ceil(steps / per_epoch), verbose=0,
            callbacks=[recorder], shuffle=True)
    if len(losses) < 10:
        raise ZooError(f"the range test stopped after {len(losses)} batches (the loss diverged at once); "
                       f"start lower than {start:g}")
    smooth = _smoothed(losses)
    logs = np.log10(rates)
    slope = np.gradient(smooth, logs)
    lowest = int(np.argmin(smooth))
    cut = max(2, lowest)  # the steepest descent before the minimum
    steepest = int(np.argmin(slope[:cut]))
    result = {"model": spec.name, "dataset": data.spec.name, "optimizer": hp["optimizer"], "steps": len(losses),
              "suggested": float(rates[steepest]), "min_loss_rate": float(rates[lowest]),
              "min_loss_rate_div10": float(rates[lowest] / 10), "rates": [float(r) for r in rates],
              "losses": [float(v) for v in losses], "smoothed": [float(v) for v in smooth],
              "method": "Smith 2017 range test: exponential rate per batch, smoothed loss (beta 0.98, bias-corrected); "
                        "suggested = steepest descent of the smoothed loss against log rate, before its minimum"}
    out = Path(runs_dir) / f"lr-find-{spec.name}-{Path(str(data.spec.name)).name}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(result, indent=2))
    _plot_range_test(result, out / "lr_find.png")
    result["dir"] = str(out)
    return result


def _smoothed(losses: list[float]) -> np.ndarray:
    avg, out = 0.0, []
    for i, v in enumerate(losses, start=1):
        avg = SMOOTHING * avg + (1 - SMOOTHING) * v
        out.append(avg / (1 - SMOOTHING ** i))
    return np.asarray(out)


def _range_test(start: float, end: float, steps: int, rates: list, losses: list):
    """A Keras callback that sets each batch's learning rate and records its loss,
    stopping on divergence. Keras logs the mean loss of the epoch so far; a batch's
    own loss is recovered from two consecutive means."""
    import keras

    class RangeTest(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step, self.mean, self.seen, self.best = 0, 0.0, 0, math.inf

        def rate(self) -> float:
            return start * (end / start) ** (self.step / max(1, steps - 1))

        def on_epoch_begin(self, epoch, logs=None):
            self.mean, self.seen = 0.0, 0

        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(self.rate())

        def on_train_batch_end(self, batch, logs=None):
            mean = float((logs or {}).get("loss", math.nan))
            self.seen += 1
            loss = mean * self.seen - self.mean * (self.seen - 1)
            self.mean = mean
            rates.append(self.rate())
            losses.append(loss)
            self.step += 1
            smooth = _smoothed(losses)[-1]
            self.best = min(self.best, smooth)
            if self.step >= steps or not math.isfinite(loss) or smooth > DIVERGED * self.best:
                self.model.stop_training = True

    return RangeTest()


def _plot_range_test(result: dict[str, Any], path: Path) -> Path:
    from zoo.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(result["rates"], result["losses"], color="0.75", linewidth=0.8, label="batch loss")
    ax.plot(result["rates"], result["smoothed"], color="C0", label="smoothed")
    ax.axvline(result["suggested"], color="C3", linestyle="--", label=f"suggested {result['suggested']:.2g} (steepest)")
    ax.axvline(result["min_loss_rate_div10"], color="C2", linestyle=":",
               label=f"minimum / 10: {result['min_loss_rate_div10']:.2g}")
    ax.set_xscale("log")
    top = np.nanpercentile(result["smoothed"], 95) * 1.3
    ax.set_ylim(min(result["smoothed"]) * 0.9, top if math.isfinite(top) else None)
    ax.set_xlabel(f"learning rate ({result['optimizer']})")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"learning-rate range test: {result['model']} on {result['dataset']}", fontsize=10)
    return save_figure(fig, path)


# --- learning curves over the training-set size --------------------------------------------


def learning_curve(model: str, dataset: str | None = None, *, sizes=(0.1, 0.25, 0.5, 0.75, 1.0),
                   runs_dir: str | Path = "runs", seed: int = 0, say=print, data_dir: str | None = None,
                   dataset_options: dict | None = None, **hyperparameters: Any) -> dict[str, Any]:
    """Train the model on growing shares of the training split (the same
    validation and test splits, the same seed) and plot the training, validation
    and test figure against the number of training examples: the gap between the
    training and validation curves is the variance, their common level the bias.
    Runs go to runs_dir/learning-curve-MODEL-DATA/nN; finished ones are reused."""
    from zoo.data import check, load
    from zoo.registry import get_spec
    from zoo.spec import UNSUPERVISED_TASKS
    from zoo.training import Run, task_for, train

    spec = get_spec(model)
    name = dataset or spec.default_dataset
    check(name or "", data_dir)
    fractions = sorted({float(s) for s in sizes})
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise ZooError(f"sizes are shares of the training split in (0, 1], got {list(sizes)}")
    full = load(name, seed=seed, data_dir=data_dir, **dict(dataset_options or {}))
    n_train = full.spec.sizes["train"]
    task = task_for(spec, full.spec)
    metric = {"classification": "accuracy", "regression": "mae"}.get(task, "mse")
    group = Path(runs_dir) / f"learning-curve-{spec.name}-{Path(str(full.spec.name)).name}"
    points = []
    for i, share in enumerate(fractions, start=1):
        n = max(2, int(round(share * n_train)))
        run_dir = group / f"n{n}"
        if (run_dir / "metrics.json").exists() and json.loads((run_dir / "metrics.json").read_text()).get(
                "status") == "completed":
            run = Run.load(run_dir)
            say(f"[{i}/{len(fractions)}] {n} training examples: already trained")
            data = load(name, seed=seed, data_dir=data_dir, limit=n, **dict(dataset_options or {}))
        else:
            say(f"[{i}/{len(fractions)}] training on {n} of {n_train} training examples")
            data = load(name, seed=seed, data_dir=data_dir, limit=n, batch_size=int(
                spec.resolve(hyperparameters)["batch_size"]), **dict(dataset_options or {}))
            run = train(spec, data, runs_dir=group, run_name=f"n{n}", seed=seed, verbose=0, **hyperparameters)
        targets = "inputs" if task in UNSUPERVISED_TASKS else "labels"
        scores = _evaluate(run.model, *data.pairs("train", targets))  # the training figure of the final model
        points.append({"n": n, "train": scores.get(metric), "val": _at_kept(run, f"val_{metric}"),
                       "test": run.metrics.get(f"test_{metric}")})
        say(f"    train {metric} {points[-1]['train']:.4f}, validation {points[-1]['val']:.4f}, "
            f"test {points[-1]['test']:.4f}")
    result = {"model": spec.name, "dataset": full.spec.name, "metric": metric, "points": points,
              "baseline": full_baseline(run, metric)}
    (group / "learning_curve.json").write_text(json.dumps(result, indent=2))
    _plot_learning_curve(result, group / "learning_curve.png")
    result["dir"] = str(group)
    return result


def _evaluate(model, x, y) -> dict[str, float]:
    """The model's metrics on arrays, in batches (zoo.data.batches pairs them)."""
    import tensorflow as tf

    from zoo.data import _tensorflow_backend

    if _tensorflow_backend():
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(256)
        return {k: float(v) for k, v in model.evaluate(data, return_dict=True, verbose=0).items()}
    return {k: float(v) for k, v in model.evaluate(x, y, batch_size=256, return_dict=True, verbose=0).items()}


def _at_kept(run, key: str) -> float | None:
    values = run.history.get(key) or []
    kept = (run.metrics.get("monitor") or {}).get("kept_epoch") or len(values)
    return float(values[kept - 1]) if values else None


def full_baseline(run, metric: str) -> float | None:
    value = run.metrics.get(f"baseline_test_{metric}")
    return float(value) if isinstance(value, (int, float)) else None


def _plot_learning_curve(result: dict[str, Any], path: Path) -> Path:
    from zoo.plots import plt, save_figure

    pts = result["points"]
    n = [p["n"] for p in pts]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, style, label in (("train", "o-", "training"), ("val", "s-", "validation"), ("test", "^--", "test")):
        ax.plot(n, [p[key] for p in pts], style, label=label, markersize=4)
    if result.get("baseline") is not None:
        ax.axhline(result["baseline"], color="C3", linestyle=":", linewidth=1, label="baseline (ignores inputs)")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(result["metric"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"learning curve: {result['model']} on {result['dataset']}", fontsize=10)
    return save_figure(fig, path)
