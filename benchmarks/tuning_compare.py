"""Random search vs Hyperband vs random search with median stopping, on one
model and dataset (default: MLP on the 8x8 digits).

Prints, per method: the best validation objective reached, the total epochs
trained, the trials run and the wall time. The same seed gives random search
and random search + median stopping the same sampled configurations, so the
difference between them is only the early stopping of bad trials.

    python benchmarks/tuning_compare.py                      # defaults below
    python benchmarks/tuning_compare.py --trials 20 --epochs 27
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--trials", type=int, default=12, help="trials of the random searches")
    p.add_argument("--epochs", type=int, default=9, help="epochs per trial (Hyperband's max_epochs)")
    p.add_argument("--objective", default="val_accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", default=None, help="keep the sweeps here (default: a temporary directory)")
    args = p.parse_args()

    from zoo.data import load
    from zoo.tuning import tune

    dataset = load(args.dataset, seed=args.seed)
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="tuning_compare-")
    # patience above the epoch budget: every method sees the same number of epochs per trial
    common = dict(objective=args.objective, epochs=args.epochs, seed=args.seed, runs_dir=runs_dir, retrain=False,
                  plots=False, fixed={"patience": 0})
    methods = {
        "random": dict(tuner="random", max_trials=args.trials),
        "hyperband": dict(tuner="hyperband", max_trials=1000, hyperband_factor=3),
        "random + median stop": dict(tuner="random", max_trials=args.trials, median_stopping=True,
                                     name="random-median"),
    }
    rows = []
    for label, options in methods.items():
        started = time.perf_counter()
        sweep = tune(args.model, dataset, **common, **options)
        seconds = time.perf_counter() - started
        done = [r for r in sweep.rows if r["status"] == "completed"]
        stopped = sum(1 for r in done if r.get("note"))
        epochs = sum(r["epochs_run"] or 0 for r in sweep.rows)
        best = sweep.best
        rows.append((label, len(sweep.rows), stopped, epochs, best["objective"] if best else float("nan"), seconds))
        print(f"{label}: done in {seconds:.0f} s", flush=True)

    print()
    print(f"{args.model} on {args.dataset}, objective {args.objective}, {args.epochs} epochs per full trial, "
          f"seed {args.seed}; sweeps in {runs_dir}")
    header = ("method", "trials", "stopped early", "epochs trained", f"best {args.objective}", "seconds")
    widths = [max(len(h), 12) for h in header]
    widths[0] = max(len(r[0]) for r in rows) + 2
    print("".join(h.ljust(w + 2) for h, w in zip(header, widths)))
    for r in rows:
        cells = [r[0], str(r[1]), str(r[2]), str(r[3]), f"{r[4]:.4f}", f"{r[5]:.0f}"]
        print("".join(c.ljust(w + 2) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
