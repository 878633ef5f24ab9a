"""A sweep's results: the trials table (CSV, JSON), a printed summary of the best
trials, and plots. Reads the sweep directory only (no TensorFlow), so a finished
or interrupted sweep can be analysed at any time (`zoo tune --report DIR`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TABLE_FIELDS = ("trial_id", "status", "objective", "epochs_run", "seconds", "reason", "note")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def trials_table(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per trial: id, status, objective, hyperparameters, other metrics,
    epochs run, seconds, failure reason, note. Merges Keras-Tuner's trial.json
    (status as the oracle saw it) with the zoo's zoo_trial.json (what ran)."""
    sweep_dir = Path(sweep_dir)
    sweep = _read_json(sweep_dir / "sweep.json") or {}
    names = list(sweep.get("space", {}))
    rows = []
    for d in sorted(sweep_dir.glob("trial_*")):
        kt = _read_json(d / "trial.json") or {}
        zr = _read_json(d / "zoo_trial.json") or {}
        trial_id = zr.get("trial_id") or kt.get("trial_id") or d.name.removeprefix("trial_")
        kt_status = str(kt.get("status", "")).upper()
        status = zr.get("status", "interrupted")
        if kt_status == "FAILED" or kt_status == "INVALID":
            status = "failed"
        elif kt_status == "RUNNING" or status == "running":
            status = "interrupted"
        elif kt_status == "COMPLETED":
            status = "completed"
        values = zr.get("hyperparameters") or {k: v for k, v in (kt.get("hyperparameters", {}).get("values") or {}).items()
                                                if not k.startswith("tuner/")}
        reason = zr.get("reason")
        if status == "failed" and not reason and kt.get("message"):
            lines = [ln for ln in kt["message"].strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else None
        row = {"trial_id": trial_id, "status": status,
               "objective": zr.get("objective") if status == "completed" else None,
               "epochs_run": zr.get("epochs_run"), "seconds": zr.get("seconds"), "reason": reason, "note": zr.get("note"),
               "best_epoch": zr.get("best_epoch"), "tuner_id": zr.get("tuner_id"), "hyperparameters": values, "metrics": zr.get("metrics") or {}}
        row.update({k: v for k, v in zr.items() if k.startswith("hyperband_")})
        if zr.get("initial_epoch"):
            row["initial_epoch"] = zr["initial_epoch"]
        rows.append(row)
    for name in names:  # searched names first, in the space's order
        for row in rows:
            row["hyperparameters"].setdefault(name, None)
    return rows


def best_rows(rows: Sequence[dict[str, Any]], direction: str, n: int = 5) -> list[dict[str, Any]]:
    done = [r for r in rows if r["status"] == "completed" and _finite(r["objective"])]
    return sorted(done, key=lambda r: r["objective"], reverse=direction == "max")[:n]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def write_table(rows: Sequence[dict[str, Any]], sweep_dir: str | Path) -> tuple[Path, Path]:
    """trials.csv (one column per hyperparameter and metric) and trials.json."""
    sweep_dir = Path(sweep_dir)
    hp_names = list(dict.fromkeys(k for r in rows for k in r["hyperparameters"]))
    metric_names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    extra = list(dict.fromkeys(k for r in rows for k in r if k.startswith("hyperband_") or k == "initial_epoch"))
    header = [*TABLE_FIELDS, "best_epoch", *extra, *(f"hp_{k}" for k in hp_names), *metric_names]
    csv_path = sweep_dir / "trials.csv"
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in (*TABLE_FIELDS, "best_epoch", *extra)]
                       + [_cell(r["hyperparameters"].get(k)) for k in hp_names]
                       + [_cell(r["metrics"].get(k)) for k in metric_names])
    tmp.replace(csv_path)
    json_path = sweep_dir / "trials.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(list(rows), indent=2, default=str))
    tmp.replace(json_path)
    return csv_path, json_path


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def summary(rows: Sequence[dict[str, Any]], objective: str, direction: str, n: int = 5) -> str:
    """A printable summary: counts by status, then the best trials."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = [f"{len(rows)} trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    epochs = sum(r["epochs_run"] or 0 for r in rows)
    lines.append(f"epochs trained: {epochs}")
    best = best_rows(rows, direction, n)
    if best:
        hp_names = list(dict.fromkeys(k for r in best for k in r["hyperparameters"]))
        header = ["trial", objective, "epochs", *hp_names]
        table = [[r["trial_id"], f"{r['objective']:.4f}", str(r["epochs_run"] or "")]
                 + [_short(r["hyperparameters"].get(k)) for k in hp_names] for r in best]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        lines.append(f"best {len(best)} by {objective} ({direction}):")
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed[:5]:
        lines.append(f"trial {r['trial_id']} failed: {r['reason']}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def plot(rows: Sequence[dict[str, Any]], sweep_dir: str | Path, objective: str, direction: str,
         log_scale: Sequence[str] = ()) -> list[Path]:
    """objective.png (objective per trial in order, with the running best) and
    hyperparameters.png (each searched hyperparameter against the objective)."""
    from zoo.plots import plt, save_figure

    sweep_dir = Path(sweep_dir)
    done = [r for r in rows if r["status"] == "completed" and _finite(r["objective"])]
    out = []
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    xs = [i for i, r in enumerate(rows) if r in done]
    ys = [r["objective"] for r in done]
    ax.scatter(xs, ys, s=18, label="trial")
    running, best = [], None
    for y in ys:
        best = y if best is None else (min(best, y) if direction == "min" else max(best, y))
        running.append(best)
    if xs:
        ax.step(xs, running, where="post", color="C1", label="best so far")
    failed = [i for i, r in enumerate(rows) if r["status"] == "failed"]
    if failed and ys:
        ax.scatter(failed, [min(ys) if direction == "max" else max(ys)] * len(failed), marker="x", color="C3",
                   label="failed")
    ax.set_xlabel("trial (in order)")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3)
    ax.legend()
    path = sweep_dir / "objective.png"
    save_figure(fig, path)
    out.append(path)

    names = list(dict.fromkeys(k for r in rows for k in r["hyperparameters"]))
    if names:
        cols = min(3, len(names))
        nrows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            vals = [r["hyperparameters"].get(name) for r in done]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals if v is not None)
            if numeric:
                pairs = [(v, y) for v, y in zip(vals, ys) if v is not None]
                ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], s=18)
                if name in log_scale and all(p[0] > 0 for p in pairs):
                    ax.set_xscale("log")
            else:
                cats = sorted({str(v) for v in vals})
                ax.scatter([cats.index(str(v)) for v in vals], ys, s=18)
                ax.set_xticks(range(len(cats)), cats, rotation=30)
            ax.set_xlabel(name)
            ax.set_ylabel(objective)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        path = sweep_dir / "hyperparameters.png"
        save_figure(fig, path)
        out.append(path)
    return out
