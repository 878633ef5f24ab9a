"""What a sweep will run, said before it starts: a budget that means what it says.

- random / bayesian: `max_trials` trials (10 unless given).
- grid: the whole grid (every combination, conditional ranges counted only
  where they are active). A grid larger than GRID_LIMIT needs `max_trials`
  said out loud; a `max_trials` below the grid's size says which points run.
- hyperband: Keras-Tuner's full bracket schedule for `epochs` and `factor`
  (Li et al. 2018); a `max_trials` below it says where it cuts the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError
from zoo.tuning.space import SweepSpace

#: trials of random and Bayesian sweeps unless given
DEFAULT_TRIALS = 10
#: a grid larger than this runs only when max_trials says how many trials to run
GRID_LIMIT = 200


@dataclass
class Plan:
    """The trials a sweep will run, and the lines that say so."""

    max_trials: int | None  # None: the tuner's own end (Hyperband's schedule)
    trials: int | None  # trials in the whole plan (None when unknown)
    epochs: int | None = None  # epochs of the whole plan, when known
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


def make(tuner: str, space: SweepSpace, max_trials: int | None, epochs: int, factor: int = 3) -> Plan:
    if max_trials is not None and max_trials < 1:
        raise ZooError(f"max_trials must be at least 1, got {max_trials}")
    if tuner == "grid":
        return _grid(space, max_trials)
    if tuner == "hyperband":
        return _hyperband(max_trials, epochs, factor)
    n = max_trials or DEFAULT_TRIALS
    return Plan(n, n, n * epochs, [f"{tuner} search: {n} trials of up to {epochs} epochs"
                                   + ("" if max_trials else " (the default; --max-trials to change)")])


# --- grid ----------------------------------------------------------------------------


def grid_points(space: SweepSpace, cap: int) -> list[dict[str, Any]]:
    """The grid's points in Keras-Tuner's order (the last range varies fastest),
    up to `cap` of them."""
    import keras_tuner

    from zoo.tuning.tuner import declare

    hp = keras_tuner.HyperParameters()
    declare(space, hp)
    oracle = keras_tuner.oracles.GridSearchOracle(objective="val_loss")
    oracle.hyperparameters = hp
    values = {h.name: h.default for h in hp.space if hp.is_active(h)}
    points = [values]
    while len(points) < cap:
        values = oracle._get_next_combination(values)
        if values is None:
            break
        points.append(dict(values))
    return points


def grid_size(ranges: list) -> int:
    """Points of a grid over Keras-Tuner hyperparameters `ranges` (declared parents
    first): for each assignment of the ranges others depend on, the product of
    the sizes of the ranges active under it."""
    parents = {c.name for h in ranges for c in h.conditions}
    deciding = [h for h in ranges if h.name in parents]
    others = [h for h in ranges if h.name not in parents]

    def active(h, values) -> bool:
        return all(c.is_active(values) for c in h.conditions)

    def count(i: int, values: dict) -> int:
        if i == len(deciding):
            return math.prod(len(list(h.values)) for h in others if active(h, values))
        h = deciding[i]
        if not active(h, values):
            return count(i + 1, values)
        return sum(count(i + 1, {**values, h.name: v}) for v in h.values)

    return count(0, {})


def _grid(space: SweepSpace, max_trials: int | None) -> Plan:
    import keras_tuner

    from zoo.tuning.tuner import declare

    hp = keras_tuner.HyperParameters()
    declare(space, hp)
    size = grid_size(hp.space)
    size_text = f"{size:,}"
    sampled = [h.name for h in hp.space if type(h).__name__ == "Float" and h.step is None]
    lines = [f"grid search over {', '.join(space.column_names())}: {size_text} points"]
    if sampled:
        lines.append(f"  {', '.join(sampled)}: float ranges without a step, so the grid takes 10 points of each "
                     "(give a step, e.g. 1e-4..1e-1:0.01, or a list of values, to choose them)")
    if max_trials is None:
        if size > GRID_LIMIT:
            raise ZooError(f"the grid over {', '.join(space.column_names())} has {size_text} points; name the ranges "
                           f"to grid with --space (only those are searched), or say how many points to run with "
                           f"--max-trials (the first N in grid order)")
        return Plan(size, size, None, lines)
    if max_trials >= size:
        return Plan(size, size, None, lines)
    first = grid_points(space, max_trials)
    varied = [name for name in space.column_names() if len({repr(p.get(name)) for p in first}) > 1]
    lines.append(f"  --max-trials {max_trials} runs the first {max_trials} of the {size_text} points (grid order varies "
                 f"the last range fastest): only {', '.join(varied) or 'nothing'} will vary; the other "
                 f"{size - max_trials:,} are skipped")
    return Plan(max_trials, size, None, lines)


# --- hyperband ----------------------------------------------------------------------------


def hyperband_schedule(max_epochs: int, factor: int) -> list[list[tuple[int, int, int]]]:
    """Keras-Tuner's Hyperband brackets, in the order it runs them: per bracket a
    list of rounds (trials, epoch budget, epochs each trial trains: a trial of a
    later round continues the best of the round before)."""
    import keras_tuner

    oracle = keras_tuner.oracles.HyperbandOracle(objective="val_loss", max_epochs=max_epochs, factor=factor)
    brackets = []
    for bracket in reversed(range(oracle._get_num_brackets())):
        rounds, previous = [], 0
        for r in range(bracket + 1):
            epochs = oracle._get_epochs(bracket, r)
            rounds.append((oracle._get_size(bracket, r), epochs, epochs - previous))
            previous = epochs
        brackets.append(rounds)
    return brackets


def _hyperband(max_trials: int | None, epochs: int, factor: int) -> Plan:
    if factor < 2:
        raise ZooError(f"hyperband_factor must be at least 2, got {factor}")
    schedule = hyperband_schedule(epochs, factor)
    trials = sum(n for rounds in schedule for n, _, _ in rounds)
    total_epochs = sum(n * e for rounds in schedule for n, _, e in rounds)
    budgets = sorted({b for rounds in schedule for _, b, _ in rounds})
    lines = [f"hyperband: {len(schedule)} brackets for up to {epochs} epochs, factor {factor}: {trials} trials "
             f"(epoch budgets {', '.join(map(str, budgets))}), {total_epochs} epochs in all"]
    for i, rounds in enumerate(schedule, start=1):
        lines.append(f"  bracket {i}: " + " -> ".join(f"{n} x {b} epochs" for n, b, _ in rounds))
    if max_trials is None or max_trials >= trials:
        return Plan(None, trials, total_epochs, lines)
    done, cut_at, longest = 0, None, 0
    for i, rounds in enumerate(schedule, start=1):
        for n, budget, _ in rounds:
            if done + n > max_trials and cut_at is None:
                cut_at = i
            if done < max_trials:
                longest = max(longest, budget)
            done += n
    lines.append(f"  --max-trials {max_trials} cuts this schedule in bracket {cut_at} of {len(schedule)}: the longest "
                 f"trial will train {longest} of {epochs} epochs (leave --max-trials out to run it all)")
    return Plan(max_trials, trials, None, lines)
