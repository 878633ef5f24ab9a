"""A sweep's objectives: what a trial is scored on.

An objective is a validation (or training) metric by name, `params` (the
model's parameter count) or `inference_time` (milliseconds for one example,
the median of ten batch-1 predictions), or, in Python, a function of an epoch's
logs. Any metric zoo.metrics knows (auc, precision, recall, f1, top5_accuracy,
r2, ...) is compiled into the trials' models when an objective names it.

Several objectives make a multi-objective sweep: the first one guides the tuner
(Bayesian optimisation and Hyperband rank trials by it; Keras-Tuner would add
them up, which means nothing for accuracy and a parameter count), and the
trials table, the summary and pareto.png show the Pareto front over all of them.

No TensorFlow here: the CLI checks objectives before anything heavy is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoo import metrics as zoo_metrics
from zoo.errors import ZooError, did_you_mean

#: objectives measured on the trained model rather than logged per epoch
MODEL_FIGURES = ("params", "inference_time")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric `name`, minimised or maximised; with `fn`, the
    value is `fn(logs)` computed from each epoch's logs (a dict of metrics)."""

    name: str
    direction: str = "min"
    fn: Callable[[Mapping[str, float]], float] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ZooError(f"objective direction must be min or max, got {self.direction!r}")

    @property
    def per_epoch(self) -> bool:
        """Logged each epoch (so early stopping, median stopping and Hyperband can use it)."""
        return self.name not in MODEL_FIGURES

    def spelled(self) -> str:
        return f"{self.name}:{self.direction}"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b


def parse(objective: Any) -> list[Objective]:
    """Objectives from what a user gives: "val_accuracy", "val_auc:max",
    "val_accuracy,params", a list of those, zoo's or Keras-Tuner's Objective, or
    a callable of an epoch's logs (minimised, as Keras-Tuner minimises a custom
    objective; wrap it in Objective(name, "max", fn) to maximise)."""
    items = objective if isinstance(objective, (list, tuple)) else [objective]
    out: list[Objective] = []
    for item in items:
        if isinstance(item, str):
            out += [_from_text(part) for part in item.split(",") if part.strip()]
        elif isinstance(item, Objective):
            out.append(item)
        elif hasattr(item, "name") and hasattr(item, "direction"):  # keras_tuner.Objective
            out.append(Objective(str(item.name), str(item.direction)))
        elif callable(item):
            name = getattr(item, "__name__", "") or "objective"
            out.append(Objective("objective" if name == "<lambda>" else name, "min", item))
        else:
            raise ZooError(f"an objective is a metric name, an Objective or a function of an epoch's logs; got {item!r}")
    if not out:
        raise ZooError("give at least one objective, e.g. val_accuracy")
    names = [o.name for o in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ZooError(f"objective {repeated[0]!r} is given twice")
    return out


def _from_text(text: str) -> Objective:
    name, _, direction = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise ZooError(f"objective {text!r} has no metric name")
    if direction:
        if direction not in ("min", "max"):
            raise ZooError(f"objective direction must be min or max, got {direction!r} in {text!r}")
        return Objective(name, direction)
    if name in MODEL_FIGURES:
        return Objective(name, "min")
    inferred = zoo_metrics.direction(name)
    if inferred is None:
        every = {n for t in zoo_metrics.TASK_METRICS for n in zoo_metrics.available(t)}
        base = name.removeprefix("val_")
        raise ZooError(f"cannot tell whether to minimise or maximise {name!r}: it is not a metric the zoo knows."
                       + did_you_mean(base, every) + f" For a metric your model reports, write {name}:min or {name}:max.")
    return Objective(name, inferred)


def metric_names_needed(objectives: Sequence[Objective]) -> list[str]:
    """Metric names (without val_) the objectives read from the logs."""
    return list(dict.fromkeys(o.name.removeprefix("val_") for o in objectives if o.fn is None and o.per_epoch))


def check(objectives: Sequence[Objective], task: str | None) -> list[str]:
    """Refuse objectives a model of `task` cannot report (before any trial
    trains); returns the metric names to compile. With `task` None (the data
    not loaded yet), only names no task knows are refused."""
    wanted = metric_names_needed(objectives)
    if task is None:
        every = {n for t in zoo_metrics.TASK_METRICS for n in zoo_metrics.available(t)}
        for o in objectives:
            name = o.name.removeprefix("val_")
            if o.fn is None and o.per_epoch and name not in every and not zoo_metrics._TOP_N.match(name):
                raise ZooError(f"objective {o.name!r} is not a metric the zoo can report." + did_you_mean(name, every)
                               + f" Known: {', '.join(sorted(every))} (as val_NAME on the validation split), "
                               f"{', '.join(MODEL_FIGURES)}.")
        return []
    try:
        return zoo_metrics.check(wanted, task)
    except ZooError as exc:
        raise ZooError(f"objective: {exc} Also: {', '.join(MODEL_FIGURES)}.") from None


def pareto_front(points: Mapping[Any, Sequence[float]], objectives: Sequence[Objective]) -> set:
    """The keys of `points` (one value per objective) that no other point
    dominates: as good in every objective and better in one."""
    signs = [1.0 if o.direction == "min" else -1.0 for o in objectives]
    scaled = {k: [s * v for s, v in zip(signs, vs)] for k, vs in points.items()}
    front = set()
    for k, a in scaled.items():
        dominated = any(all(x <= y for x, y in zip(b, a)) and any(x < y for x, y in zip(b, a))
                        for j, b in scaled.items() if j != k)
        if not dominated:
            front.add(k)
    return front
