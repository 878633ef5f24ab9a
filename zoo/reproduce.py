"""`zoo reproduce`: train a recipe on its paper's dataset and set our figure beside the
paper's, in one command.

    zoo reproduce lenet5 --budget quick --data-dir ~/data     # minutes: the quick budget
    zoo reproduce lenet5 --budget paper                       # the paper's number of epochs
    zoo reproduce mlp --recipe goodfellow2015                 # a family's other recipe
    zoo reproduce --list                                      # what can be reproduced, on which data

A reproduction is a run directory (the recipe's run, with reproduction.json) and a
table: the paper's figure and its source, ours, the budget, the time and the
difference. Figures are named as run metrics (test_accuracy, test_mse, ...) or
derived from them (FIGURES: test_error is 100 * (1 - test_accuracy), ...).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path
from typing import Any

from zoo import recipes, registry
from zoo.commands import command, table
from zoo.errors import ZooError
from zoo.spec import Figure, ModelSpec, Recipe

def _xor_corners(run) -> float:
    """The share of XOR's four patterns (0,0), (0,1), (1,0), (1,1) the trained model gets right."""
    import numpy as np

    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], "float32")
    return float(np.mean(run.predict(corners)["class_ids"] == np.array([0, 1, 1, 0])))


#: derived figures: name -> (what it is, how to compute it from a finished zoo.training.Run)
FIGURES = {
    "test_error": ("test error, %", lambda run: 100.0 * (1.0 - run.metrics["test_accuracy"])),
    "test_top1_error": ("top-1 test error, %", lambda run: 100.0 * (1.0 - run.metrics["test_accuracy"])),
    "test_squared_error_per_example": ("squared error per example (sum over inputs)",
                                       lambda run: run.metrics["test_mse"] * math.prod(run.data_spec.input_shape)),
    "xor_pattern_accuracy": ("share of XOR's four patterns classified right", _xor_corners),
}
BUDGETS = ("quick", "paper")


def figure_value(figure: Figure, run) -> float:
    """Our value of `figure` for a finished run: FIGURES, a metric of metrics.json (or of
    its "robustness" part) by name, or NAME_error as 100 * (1 - NAME_accuracy)."""
    found = {**run.metrics, **(run.metrics.get("robustness") or {})}
    name = figure.metric
    if name in FIGURES:
        return float(FIGURES[name][1](run))
    if name in found:
        return float(found[name])
    if name.endswith("_error") and name[:-len("_error")] + "_accuracy" in found:
        return 100.0 * (1.0 - float(found[name[:-len("_error")] + "_accuracy"]))
    raise ZooError(f"the run has no figure {name!r} (its metrics: {', '.join(sorted(found))})")


def lower_is_better(metric: str) -> bool:
    return metric.endswith(("error", "mse", "mae", "loss", "per_example"))


def reached(figure: Figure, ours: float) -> bool:
    """Whether ours reaches the paper's figure (as good or better) or, for a limit, holds it
    (no better)."""
    better = figure.value - ours if lower_is_better(figure.metric) else ours - figure.value
    return better <= 0 if figure.limit else better >= 0


def reproducible(spec: ModelSpec, recipe: Recipe) -> bool:
    return bool(recipe.dataset and recipe.figure)


def listing(pattern: str | None = None) -> list[tuple[ModelSpec, Recipe]]:
    """Every recipe with a paper figure to reproduce."""
    return [(s, r) for s, r in recipes.listing(pattern) if reproducible(s, r)]


def describe_budget(recipe: Recipe, budget: str) -> str:
    hp, options = recipes.budget(recipe, budget)
    epochs = recipe.hyperparameters.get("epochs")
    settings = {**({"epochs": epochs} if epochs and "epochs" not in hp else {}), **hp, **options}
    return f"{budget}: " + (", ".join(f"{k}={v}" for k, v in settings.items()) or "the recipe's")


def reproduce(model: str, recipe: str = "paper", budget: str = "quick", *, data_dir: str | None = None,
              runs_dir: str | Path = "runs", seed: int = 0, verbose: Any = "auto",
              **overrides: Any) -> dict[str, Any]:
    """Train `model`'s `recipe` on its paper's dataset within `budget` (and `overrides` of
    it: epochs, limit, ...) and compare its figure with the paper's; returns the row (also
    written to the run's reproduction.json)."""
    from zoo.data import check as check_dataset
    from zoo.training import train

    spec = registry.get_spec(model)
    chosen = recipes.get(spec, recipe)
    if chosen is None or not reproducible(spec, chosen):
        known = ", ".join(r.name for s, r in listing() if s.name == spec.name) or "none"
        raise ZooError(f"model {spec.name!r} has no recipe {recipe!r} with a paper figure to reproduce; its "
                       f"reproducible recipes: {known} (`zoo reproduce --list`)")
    hp, options = recipes.budget(chosen, budget)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in overrides.items():
        (options if key in ("limit", "split") else hp)[key] = value
    check_dataset(chosen.dataset, data_dir)
    started = time.perf_counter()
    figure = chosen.figure
    top_k = re.fullmatch(r"test_(top\d+)_error", figure.metric)  # top-5: a metric to compile (zoo.metrics)
    extra = [f"{top_k[1]}_accuracy"] if top_k and top_k[1] != "top1" else []
    run = train(spec.name, chosen.dataset, recipe=chosen.name, data_dir=data_dir, runs_dir=runs_dir, seed=seed,
                metrics=extra,
                run_name=f"reproduce-{spec.name}-{chosen.name}-{budget}-{time.strftime('%Y%m%d-%H%M%S')}",
                verbose=verbose, **options, **hp)
    if figure.attack:  # a robustness figure: attack the trained model as the paper did
        from zoo.adversarial import evaluate_run

        attack = dict(figure.attack)
        evaluate_run(run, eps=[float(attack["eps"])], attacks=[attack.get("attack", "pgd")],
                     steps=int(attack.get("steps", 40)), step_size=attack.get("step_size"),
                     data_dir=data_dir, dataset=run.dataset)
    ours = figure_value(figure, run)
    difference = ours - figure.value
    row = {"model": spec.name, "recipe": chosen.name, "dataset": chosen.dataset, "metric": figure.metric,
           "paper": figure.value, "source": figure.source, "ours": ours, "difference": difference,
           "reached": reached(figure, ours),
           "limit": figure.limit,
           "budget": describe_budget(chosen, budget) + "".join(f", then {k}={v}" for k, v in overrides.items()),
           "epochs_run": run.metrics.get("epochs_run"),
           "train_seconds": run.metrics.get("train_seconds"), "seconds": round(time.perf_counter() - started, 1),
           "run": str(run.dir)}
    (run.dir / "reproduction.json").write_text(json.dumps(row, indent=2))
    return row


# --- command line ----------------------------------------------------------------------


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a model with a reproducible recipe (zoo reproduce --list)")
    p.add_argument("--recipe", default="paper", help="the recipe to reproduce (default: paper)")
    p.add_argument("--budget", choices=BUDGETS, default="quick",
                   help="quick: minutes, to see it work; paper: the paper's epochs (default quick)")
    p.add_argument("--list", action="store_true", help="what each model can reproduce and on which data")
    p.add_argument("--epochs", type=int, help="override the budget's epochs (a budget that fits this machine)")
    p.add_argument("--limit", type=int, help="override the budget's number of training examples")
    p.add_argument("--data-dir", help="local data directory (default $ZOO_DATA_DIR or ~/.zoo/data)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the row as JSON")


def _figure_text(metric: str, value: float) -> str:
    return f"{value:.4g}" + ("%" if metric.endswith("error") else "")


@command("reproduce", _args)
def cmd_reproduce(args: argparse.Namespace) -> int:
    """Train a model's paper recipe on the paper's dataset; print our figure beside the paper's."""
    import sys

    if args.list:
        rows = [(s.name, r.name, r.dataset, f"{r.figure.metric} {_figure_text(r.figure.metric, r.figure.value)}",
                 r.figure.source, "; ".join(describe_budget(r, b) for b in r.budgets)) for s, r in listing()]
        print(table(rows, ("model", "recipe", "data", "paper figure", "source", "budgets")))
        return 0
    if not args.model:
        raise ZooError("give a model (zoo reproduce lenet5), or --list to see what can be reproduced")
    row = reproduce(args.model, args.recipe, args.budget, data_dir=args.data_dir, runs_dir=args.runs_dir,
                    seed=args.seed, verbose=0 if args.quiet else ("auto" if sys.stdout.isatty() else 2),
                    epochs=args.epochs, limit=args.limit)
    if args.json:
        print(json.dumps(row, indent=2))
        return 0
    metric = row["metric"]
    print(table([(f"{row['model']} ({row['recipe']})", row["dataset"], metric, _figure_text(metric, row["paper"]),
                  _figure_text(metric, row["ours"]), f"{row['difference']:+.3g}", row["budget"],
                  f"{row['seconds']:.0f} s")],
                ("model", "data", "figure", "paper", "ours", "difference", "budget", "time")))
    print(f"source: {row['source']}")
    print(f"run directory: {row['run']} (reproduction.json)")
    if row["limit"]:
        print("the paper's figure is a limit: it " + ("holds" if row["reached"] else "does NOT hold") + " here")
    elif not row["reached"]:
        print(f"not reached at this budget ({'lower' if lower_is_better(metric) else 'higher'} is better); "
              f"the recipe's notes and the run's learning_curves.png say why it may differ")
    return 0
