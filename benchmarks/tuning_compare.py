"""Random search vs Hyperband (its full schedule) vs random search with median
stopping, on one model and dataset (default: the MLP on the 8x8 digits; an image
family with --model lenet5).

Every method's cost is measured to the moment it first finishes a trial within
--tolerance (0.5 points by default) of random search's best objective: for
random search that is its whole sweep (a user cannot know beforehand which trial
will be best), for the others the epochs trained and the wall time up to that
trial, in the order trials finished. Also printed per method: trials, trials
stopped early, epochs trained in all, the best objective, and the fixed cost per
trial: the intercept of a least-squares line of every trial's seconds against
its epochs (all three sweeps), plus the time each sweep spends between trials. The same seed gives
random search and random search + median stopping the same configurations, so
the difference between them is only the stopping of bad trials.

Target (issue 16): Hyperband and median stopping reach random's best with at
most 50% of its epochs and at most 60% of its wall time.

    python benchmarks/tuning_compare.py                         # mlp on digits
    python benchmarks/tuning_compare.py --model lenet5 --trials 16 --epochs 9
    python benchmarks/tuning_compare.py --model lenet5_modern --dataset mnist --data-dir ../shared/data \
        --limit 2000 --trials 16 --epochs 9     # 10,589 validation images: 0.5 points is 53 of them
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cost_line(sweeps) -> tuple[float, float]:
    """(seconds per trial that do not grow with epochs, seconds per epoch): a
    least-squares line through (epochs run, seconds) of every trial of every
    sweep (same model and data; Hyperband's and the median rule's trials vary in
    length, so the line is determined even when random search's are all alike)."""
    import numpy as np

    done = [r for sweep in sweeps for r in sweep.rows if r["seconds"] and r["epochs_run"]]
    slope, intercept = np.polyfit([r["epochs_run"] for r in done], [r["seconds"] for r in done], 1)
    return float(intercept), float(slope)


def between_trials(rows: list[dict], wall: float) -> float:
    """Seconds per trial the sweep spends outside trials (the tuner's own work)."""
    done = [r for r in rows if r["seconds"]]
    return (wall - sum(r["seconds"] for r in done)) / max(1, len(done))


def time_to_target(rows: list[dict], start: float, target: float, direction: str) -> tuple[int | None, float | None]:
    """Epochs trained and seconds elapsed until the first trial within reach of `target`."""
    epochs = 0
    for r in sorted((r for r in rows if r.get("finished_at")), key=lambda r: r["finished_at"]):
        epochs += r["epochs_run"] or 0
        value = r["objective"]
        if value is not None and (value >= target if direction == "max" else value <= target):
            return epochs, r["finished_at"] - start
    return None, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--trials", type=int, default=20, help="trials of the random searches")
    p.add_argument("--epochs", type=int, default=27, help="epochs per full trial (Hyperband's max_epochs)")
    p.add_argument("--objective", default="val_accuracy")
    p.add_argument("--tolerance", type=float, default=0.005, help="reach random's best within this (0.005 = 0.5 points)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="where offline datasets are (e.g. ../shared/data for mnist)")
    p.add_argument("--limit", type=int, default=None, help="training examples (the validation split stays whole)")
    p.add_argument("--runs-dir", default=None, help="keep the sweeps here (default: a temporary directory)")
    args = p.parse_args()

    from zoo.data import load
    from zoo.tuning import tune
    from zoo.tuning.objectives import parse

    objective = parse(args.objective)[0]
    dataset = load(args.dataset, seed=args.seed, data_dir=args.data_dir, limit=args.limit)
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="tuning_compare-")
    # patience above the epoch budget: every method sees the epochs its schedule gives
    common = dict(objective=args.objective, epochs=args.epochs, seed=args.seed, runs_dir=runs_dir, retrain=False,
                  plots=False, fixed={"patience": 0}, verbose=-1, restart=True)
    methods = {
        "random": dict(tuner="random", max_trials=args.trials),
        "hyperband": dict(tuner="hyperband", hyperband_factor=3),
        "random + median stop": dict(tuner="random", max_trials=args.trials, median_stopping=True,
                                     name="random-median"),
    }
    results = {}
    for label, options in methods.items():
        start = time.time()
        sweep = tune(args.model, dataset, **common, **options)
        wall = time.time() - start
        results[label] = (sweep, start, wall)
        print(f"{label}: {len(sweep.rows)} trials in {wall:.0f} s", flush=True)

    random_sweep, _, random_wall = results["random"]
    best = random_sweep.best["objective"]
    target = best - args.tolerance if objective.direction == "max" else best + args.tolerance
    random_epochs = sum(r["epochs_run"] or 0 for r in random_sweep.rows)
    print()
    print(f"{args.model} on {args.dataset}, objective {args.objective}, up to {args.epochs} epochs per trial, "
          f"seed {args.seed}; random's best {best:.4f}, target {target:.4f}; sweeps in {runs_dir}")
    in_trial, per_epoch = cost_line([sweep for sweep, _, _ in results.values()])
    print(f"cost of a trial (all sweeps): {in_trial:.2f} s + {per_epoch:.3f} s per epoch")
    header = ("method", "trials", "stopped", "epochs", "best", "epochs to target", "s to target",
              "epochs vs random", "time vs random", "fixed s/trial")
    table = []
    for label, (sweep, start, wall) in results.items():
        rows = sweep.rows
        epochs = sum(r["epochs_run"] or 0 for r in rows)
        stopped = sum(1 for r in rows if r["status"] == "stopped")
        if label == "random":
            to_epochs, to_seconds = random_epochs, random_wall
        else:
            to_epochs, to_seconds = time_to_target(rows, start, target, objective.direction)
        fixed = in_trial + between_trials(rows, wall)
        reached = to_epochs is not None
        table.append([label, str(len(rows)), str(stopped), str(epochs), f"{sweep.best['objective']:.4f}",
                      str(to_epochs) if reached else "not reached", f"{to_seconds:.0f}" if reached else "-",
                      f"{to_epochs / random_epochs:.0%}" if reached else "-",
                      f"{to_seconds / random_wall:.0%}" if reached else "-", f"{fixed:.2f}"])
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)))


if __name__ == "__main__":
    main()
