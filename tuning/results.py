"""A sweep's results: the trials table (CSV, JSON), a printed summary of the best
trials (and the Pareto front of a multi-objective sweep), and plots. Reads the
sweep directory only (no TensorFlow), so a finished or interrupted sweep can be
analysed at any time (`zoo tune --report DIR`).

Trial ids are numbers (Keras-Tuner pads them to the width of max_trials, so an
extended sweep has "09" beside "10"); rows, plots and the console use the number.
Statuses: completed (trained its whole budget, or to early stopping),
stopped (cut by the median rule), failed (raised; the reason is one line,
the traceback is in sweep.log), interrupted (the process ended mid-trial; the
trial runs again when the sweep resumes).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.tuning.objectives import Objective, pareto_front

TABLE_FIELDS = ("trial_id", "status", "objective", "budget", "epochs_run", "best_epoch", "seconds", "reason", "note")
FINISHED_TRAINING = ("completed", "stopped")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def trials_table(sweep_dir: str | Path, objectives: Sequence[Objective] = ()) -> list[dict[str, Any]]:
    """One row per trial, in trial order: number, status, objective(s),
    hyperparameters, other metrics, epoch budget, epochs run, seconds, failure
    reason, note; and, with several objectives, whether the trial is on the
    Pareto front. Merges Keras-Tuner's trial.json (the oracle's view) with the
    zoo's zoo_trial.json (what ran): a finished zoo record wins over a trial.json
    that a kill left saying RUNNING."""
    sweep_dir = Path(sweep_dir)
    sweep = _read_json(sweep_dir / "sweep.json") or {}
    rows = []
    for d in sweep_dir.glob("trial_*"):
        kt = _read_json(d / "trial.json") or {}
        zr = _read_json(d / "zoo_trial.json") or {}
        trial_id = zr.get("trial_id") or kt.get("trial_id") or d.name.removeprefix("trial_")
        try:
            number = int(trial_id)
        except ValueError:
            continue
        rows.append(_row(number, kt, zr))
    rows.sort(key=lambda r: r["trial_id"])
    names = list(dict.fromkeys([*(sweep.get("columns") or []), *(k for r in rows for k in r["hyperparameters"])]))
    for row in rows:
        row["hyperparameters"] = {k: row["hyperparameters"].get(k) for k in names}
    if len(objectives) > 1:
        points = {r["trial_id"]: [r["objectives"].get(o.name) for o in objectives] for r in rows
                  if r["status"] in FINISHED_TRAINING and all(_finite(r["objectives"].get(o.name)) for o in objectives)}
        front = pareto_front(points, objectives)
        for row in rows:
            row["pareto"] = row["trial_id"] in front
    return rows


def _row(number: int, kt: dict, zr: dict) -> dict[str, Any]:
    status = zr.get("status")
    kt_status = str(kt.get("status", "")).upper()
    if status not in ("completed", "stopped", "failed"):
        status = "failed" if kt_status in ("FAILED", "INVALID") and not zr else "interrupted"
    values = zr.get("hyperparameters") or {k: v for k, v in (kt.get("hyperparameters", {}).get("values") or {}).items()
                                            if not k.startswith("tuner/")}
    reason = zr.get("reason")
    if status == "failed" and not reason and kt.get("message"):
        lines = [ln for ln in kt["message"].strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else None
    trained = status in FINISHED_TRAINING
    row = {"trial_id": number, "dir": f"trial_{zr.get('trial_id') or kt.get('trial_id') or number}",
           "status": status, "objective": zr.get("objective") if trained else None,
           "objectives": zr.get("objectives") or {} if trained else {}, "budget": zr.get("budget"),
           "initial_epoch": zr.get("initial_epoch") or 0, "epochs_run": zr.get("epochs_run"),
           "best_epoch": zr.get("best_epoch"), "seconds": zr.get("seconds"), "finished_at": zr.get("finished_at"),
           "reason": reason, "note": zr.get("note"),
           "stopped_epoch": zr.get("stopped_epoch"), "tuner_id": zr.get("tuner_id"), "hyperparameters": dict(values),
           "values": zr.get("values") or dict(values), "metrics": zr.get("metrics") or {},
           "curve": zr.get("curve") or []}
    row.update({k: v for k, v in zr.items() if k.startswith("hyperband_")})
    return row


def best_rows(rows: Sequence[dict[str, Any]], direction: str, n: int = 5) -> list[dict[str, Any]]:
    done = [r for r in rows if r["status"] in FINISHED_TRAINING and _finite(r["objective"])]
    return sorted(done, key=lambda r: r["objective"], reverse=direction == "max")[:n]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def write_table(rows: Sequence[dict[str, Any]], sweep_dir: str | Path) -> tuple[Path, Path]:
    """trials.csv (one column per hyperparameter and metric) and trials.json, written atomically."""
    sweep_dir = Path(sweep_dir)
    hp_names = list(dict.fromkeys(k for r in rows for k in r["hyperparameters"]))
    metric_names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    extra = list(dict.fromkeys(k for r in rows for k in r if k.startswith("hyperband_") or k in ("initial_epoch",
                                                                                                  "pareto")))
    header = [*TABLE_FIELDS, *extra, *(f"hp_{k}" for k in hp_names), *metric_names]
    csv_path = sweep_dir / "trials.csv"
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in (*TABLE_FIELDS, *extra)]
                       + [_cell(r["hyperparameters"].get(k)) for k in hp_names]
                       + [_cell(r["metrics"].get(k)) for k in metric_names])
    tmp.replace(csv_path)
    json_path = sweep_dir / "trials.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([{k: v for k, v in r.items() if k != "curve"} for r in rows], indent=2, default=str))
    tmp.replace(json_path)
    return csv_path, json_path


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def summary(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective], n: int = 5) -> str:
    """A printable summary: counts by status, epochs, then the best trials (and
    the Pareto front of a multi-objective sweep)."""
    primary = objectives[0]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = [f"{len(rows)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    lines.append(f"epochs trained: {sum(r['epochs_run'] or 0 for r in rows)}")
    best = best_rows(rows, primary.direction, n)
    if best:
        lines.append(f"best {len(best)} by {primary.name} ({primary.direction}):")
        lines += _trial_table(best, objectives)
    if len(objectives) > 1:
        front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["objective"],
                       reverse=primary.direction == "max")
        lines.append(f"Pareto front over {', '.join(o.spelled() for o in objectives)}: {len(front)} trials")
        lines += _trial_table(front, objectives)
    for r in [r for r in rows if r["status"] == "failed"][:5]:
        lines.append(f"trial {r['trial_id']} failed: {r['reason']}")
    interrupted = [str(r["trial_id"]) for r in rows if r["status"] == "interrupted"]
    if interrupted:
        lines.append(f"interrupted (run again when the sweep resumes): trials {', '.join(interrupted)}")
    return "\n".join(lines)


def _trial_table(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective]) -> list[str]:
    hp_names = [k for k in dict.fromkeys(k for r in rows for k in r["hyperparameters"])
                if any(r["hyperparameters"].get(k) is not None for r in rows)]
    header = ["trial", *(o.name for o in objectives), "status", "epochs", *hp_names]
    table = [[str(r["trial_id"]), *(_short(r["objectives"].get(o.name, r["objective"] if i == 0 else None))
                                     for i, o in enumerate(objectives)),
              r["status"], _epochs(r)] + [_short(r["hyperparameters"].get(k)) for k in hp_names] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    return ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
            *("  " + "  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table)]


def _epochs(r: dict[str, Any]) -> str:
    run = (r["initial_epoch"] or 0) + (r["epochs_run"] or 0)
    return f"{run}/{r['budget']}" if r.get("budget") else str(run or "")


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --- plots ------------------------------------------------------------------------------


def plot(rows: Sequence[dict[str, Any]], sweep_dir: str | Path, objectives: Sequence[Objective],
         log_scale: Sequence[str] = ()) -> list[Path]:
    """objective.png (objective per trial with the running best; stopped and
    failed trials marked, Hyperband budgets as marker sizes), hyperparameters.png
    (each searched hyperparameter against the objective) and, with several
    objectives, pareto.png."""
    sweep_dir = Path(sweep_dir)
    out = [_objective_plot(rows, sweep_dir / "objective.png", objectives[0])]
    if any(r["hyperparameters"] for r in rows):
        out.append(_hyperparameter_plot(rows, sweep_dir / "hyperparameters.png", objectives[0], log_scale))
    if len(objectives) > 1:
        out.append(_pareto_plot(rows, sweep_dir / "pareto.png", objectives))
    return out


def _objective_plot(rows, path: Path, objective: Objective) -> Path:
    from matplotlib.ticker import MaxNLocator

    from zoo.plots import plt, save_figure

    done = [r for r in rows if r["status"] in FINISHED_TRAINING and _finite(r["objective"])]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    budgets = sorted({r["budget"] for r in done if r.get("budget")})
    sizes = {b: 14 + 50 * i / max(1, len(budgets) - 1) for i, b in enumerate(budgets)} if len(budgets) > 1 else {}
    for status, marker, colour in (("completed", "o", "C0"), ("stopped", "v", "C2")):
        pick = [r for r in done if r["status"] == status]
        if pick:
            ax.scatter([r["trial_id"] for r in pick], [r["objective"] for r in pick], marker=marker, color=colour,
                       s=[sizes.get(r.get("budget"), 18) for r in pick],
                       label=status if status == "completed" else "stopped by the median rule")
    xs, running, best = [], [], None
    for r in done:
        y = r["objective"]
        best = y if best is None or objective.better(y, best) else best
        xs.append(r["trial_id"])
        running.append(best)
    if xs:
        last = rows[-1]["trial_id"]
        ax.step(xs + [last], running + running[-1:], where="post", color="C1", label="best so far")
    failed = [r["trial_id"] for r in rows if r["status"] == "failed"]
    if failed and done:
        worst = min(r["objective"] for r in done) if objective.direction == "max" else max(r["objective"] for r in done)
        ax.scatter(failed, [worst] * len(failed), marker="x", color="C3", label="failed")
    if sizes:
        ax.set_title("marker size: epoch budget (" + ", ".join(map(str, budgets)) + ")", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(objective.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _hyperparameter_plot(rows, path: Path, objective: Objective, log_scale: Sequence[str]) -> Path:
    from zoo.plots import plt, save_figure

    done = [r for r in rows if r["status"] in FINISHED_TRAINING and _finite(r["objective"])]
    names = list(dict.fromkeys(k for r in rows for k in r["hyperparameters"]))
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        pairs = [(r["hyperparameters"].get(name), r["objective"]) for r in done
                 if r["hyperparameters"].get(name) is not None]
        vals = [p[0] for p in pairs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            ax.scatter(vals, [p[1] for p in pairs], s=18)
            if _log_axis(name, log_scale) and vals and all(v > 0 for v in vals):
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in vals})
            ax.scatter([cats.index(str(v)) for v in vals], [p[1] for p in pairs], s=18)
            ax.set_xticks(range(len(cats)), cats, rotation=30)
        ax.set_xlabel(name)
        ax.set_ylabel(objective.name)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    return save_figure(fig, path)


def _log_axis(name: str, log_scale: Sequence[str]) -> bool:
    return name in log_scale or name.rsplit("_", 1)[0] in log_scale


def _pareto_plot(rows, path: Path, objectives: Sequence[Objective]) -> Path:
    """The first objective against each other one; the Pareto front joined."""
    from zoo.plots import plt, save_figure

    done = [r for r in rows if r["status"] in FINISHED_TRAINING
            and all(_finite(r["objectives"].get(o.name)) for o in objectives)]
    others = objectives[1:]
    fig, axes = plt.subplots(1, len(others), figsize=(5 * len(others), 3.8), squeeze=False)
    first = objectives[0]
    for ax, other in zip(axes[0], others):
        xs = [r["objectives"][other.name] for r in done]
        ys = [r["objectives"][first.name] for r in done]
        ax.scatter(xs, ys, s=18, color="C0", label="trial")
        front = sorted((r for r in done if r.get("pareto")), key=lambda r: r["objectives"][other.name])
        if front:
            ax.plot([r["objectives"][other.name] for r in front], [r["objectives"][first.name] for r in front],
                    "o-", color="C3", label="Pareto front")
        for r in front:
            ax.annotate(str(r["trial_id"]), (r["objectives"][other.name], r["objectives"][first.name]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"{other.name} ({other.direction})")
        ax.set_ylabel(f"{first.name} ({first.direction})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


# --- explaining a sweep (zoo tune --report) --------------------------------------------------


def explain(rows: Sequence[dict[str, Any]], sweep_dir: str | Path, objective: Objective) -> list[Path]:
    """importance.json and importance.png (hyperparameter importances),
    parallel.png (parallel coordinates) and curves.png (every trial's
    objective per epoch), from the trials that finished training."""
    sweep_dir = Path(sweep_dir)
    out = [_curves_plot(rows, sweep_dir / "curves.png", objective)]
    done = [r for r in rows if r["status"] in FINISHED_TRAINING and _finite(r["objective"])]
    names = [k for k in dict.fromkeys(k for r in rows for k in r["hyperparameters"])
             if len({repr(r["hyperparameters"].get(k)) for r in done}) > 1]
    if len(done) >= 2 and names:
        out.append(_parallel_plot(done, names, sweep_dir / "parallel.png", objective))
    importances = importance(done, names)
    if importances:
        (sweep_dir / "importance.json").write_text(json.dumps(importances, indent=2))
        out.append(_importance_plot(importances, sweep_dir / "importance.png", objective))
    return out


#: trials needed before importances are computed
MIN_TRIALS_FOR_IMPORTANCE = 5


def importance(done: Sequence[dict[str, Any]], names: Sequence[str], seed: int = 0) -> dict[str, Any] | None:
    """How much each hyperparameter explains the objective: permutation
    importance (scikit-learn) of a random forest fitted to predict the objective
    from the hyperparameters; each figure is the drop in the forest's R^2 when
    that hyperparameter's column is shuffled, averaged over 20 shuffles. Choices
    are one-hot columns summed back per hyperparameter; an inactive
    conditional value (e.g. widths_3 at depth 2) is its own code (-1)."""
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE or not names:
        return None
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    columns, owners = [], []
    for name in names:
        vals = [r["hyperparameters"].get(name) for r in done]
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vals):
            columns.append([-1.0 if v is None else float(v) for v in vals])
            owners.append(name)
        else:
            for cat in sorted({str(v) for v in vals}):
                columns.append([1.0 if str(v) == cat else 0.0 for v in vals])
                owners.append(name)
    x = np.array(columns).T
    y = np.array([r["objective"] for r in done])
    forest = RandomForestRegressor(n_estimators=200, random_state=seed, min_samples_leaf=1).fit(x, y)
    result = permutation_importance(forest, x, y, n_repeats=20, random_state=seed)
    scores: dict[str, float] = {}
    for owner, value in zip(owners, result.importances_mean):
        scores[owner] = scores.get(owner, 0.0) + max(0.0, float(value))
    total = sum(scores.values()) or 1.0
    return {"method": "permutation importance of a random forest (scikit-learn; 200 trees, 20 shuffles) fitted on "
                      f"{len(done)} trials; shares of the total drop in R^2",
            "r2_of_forest": round(float(forest.score(x, y)), 4),
            "importance": dict(sorted(((k, round(v / total, 4)) for k, v in scores.items()), key=lambda kv: -kv[1]))}


def _importance_plot(importances: dict[str, Any], path: Path, objective: Objective) -> Path:
    from zoo.plots import plt, save_figure

    items = list(importances["importance"].items())[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(items) + 1.4))
    ax.barh([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_xlabel(f"share of {objective.name} explained (permutation importance)")
    ax.set_title("hyperparameter importance", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def _parallel_plot(done, names: Sequence[str], path: Path, objective: Objective) -> Path:
    """One vertical axis per hyperparameter (then the objective), each scaled to
    [0, 1]; a line per trial, coloured by its objective."""
    from zoo.plots import plt, save_figure

    axes_names = [*names, objective.name]
    scaled, ticks = [], []
    for name in axes_names:
        vals = [r["objective"] if name == objective.name else r["hyperparameters"].get(name) for r in done]
        numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vals)
        if numeric:
            present = [v for v in vals if v is not None]
            lo, hi = (min(present), max(present)) if present else (0.0, 1.0)
            span = (hi - lo) or 1.0
            scaled.append([None if v is None else (v - lo) / span for v in vals])
            ticks.append((f"{lo:.3g}", f"{hi:.3g}"))
        else:
            cats = sorted({str(v) for v in vals})
            scaled.append([cats.index(str(v)) / max(1, len(cats) - 1) for v in vals])
            ticks.append((cats[0], cats[-1]))
    values = [r["objective"] for r in done]
    lo, hi = min(values), max(values)
    cmap = plt.get_cmap("viridis" if objective.direction == "max" else "viridis_r")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(axes_names)), 4.2))
    for i, r in enumerate(done):
        pts = [(j, col[i]) for j, col in enumerate(scaled) if col[i] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=cmap((values[i] - lo) / ((hi - lo) or 1.0)),
                alpha=0.8, linewidth=1.2)
    for j, (low, high) in enumerate(ticks):
        ax.axvline(j, color="0.6", linewidth=0.8)
        ax.text(j, -0.06, low, ha="center", va="top", fontsize=7)
        ax.text(j, 1.06, high, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(axes_names)), axes_names, rotation=25, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
    fig.colorbar(sm, ax=ax, label=objective.name)
    ax.set_title("parallel coordinates (each axis from its lowest to its highest value)", fontsize=9)
    return save_figure(fig, path)


def _curves_plot(rows, path: Path, objective: Objective) -> Path:
    """Every trial's objective per epoch on one plot (its monitored curve);
    stopped trials end in a triangle, the best trial is drawn thick."""
    from matplotlib.ticker import MaxNLocator

    from zoo.plots import plt, save_figure

    best = best_rows(rows, objective.direction, 1)
    best_id = best[0]["trial_id"] if best else None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for r in rows:
        curve = [v for v in r.get("curve") or []]
        if not curve:
            continue
        epochs = list(range(1, len(curve) + 1))
        thick = r["trial_id"] == best_id
        ax.plot(epochs, curve, color="C3" if thick else "0.55", linewidth=2.2 if thick else 0.8, alpha=1 if thick else 0.7,
                label=f"best: trial {best_id}" if thick else None, zorder=3 if thick else 1)
        if r["status"] == "stopped":
            ax.plot(epochs[-1], curve[-1], "v", color="C2", markersize=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective.name)
    ax.grid(alpha=0.3)
    if best_id is not None:
        ax.legend(fontsize=8)
    ax.set_title("every trial's learning curve (triangles: stopped by the median rule)", fontsize=9)
    return save_figure(fig, path)
