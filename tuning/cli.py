"""`zoo tune`: registered with the core CLI's @command; imports no TensorFlow
until the command runs."""

from __future__ import annotations

import argparse
import sys

from zoo.commands import add_data_arguments, add_hp_arguments, command, data_options, hp_options, parse_sets
from zoo.errors import ZooError


def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a registered model (not needed with --report)")
    add_data_arguments(p)
    p.add_argument("--tuner", default="random", choices=("random", "bayesian", "hyperband", "grid"))
    p.add_argument("--max-trials", type=int,
                   help="trials to run in all (default: the tuner's whole budget: 10 random or Bayesian trials, the "
                        "whole grid, Hyperband's full schedule; raise it to extend a sweep)")
    p.add_argument("--objective", action="append", metavar="NAME[:min|max]",
                   help="val_loss (default), val_accuracy, val_auc, val_f1, val_precision, val_recall, "
                        "val_top5_accuracy, val_mae, val_r2, ..., params, inference_time; repeat it (or give a comma "
                        "list) for a multi-objective sweep: the first guides the tuner, the Pareto front is reported")
    add_hp_arguments(p)  # --epochs, --batch-size, --optimizer, --lr, --set: fixed values
    p.add_argument("--space", action="append", default=[], metavar="NAME=FORM",
                   help="search NAME over FORM: 1e-4..1e-2:log, 16..256:16, relu,tanh or bool")
    p.add_argument("--space-file", metavar="TOML", help="a TOML file with [fix] and [space] tables")
    p.add_argument("--tune", nargs="+", default=[], metavar="NAME",
                   help="also search these with built-in ranges: batch_size, optimizer, learning_rate, dropout")
    p.add_argument("--median-stopping", action="store_true",
                   help="stop a trial worse than the median of finished trials at the same epoch")
    p.add_argument("--median-min-trials", type=int, default=3, help="finished trials needed before the median rule acts")
    p.add_argument("--hyperband-factor", type=int, default=3)
    p.add_argument("--max-failures", type=int, default=10, help="stop after this many failed trials in a row")
    p.add_argument("--runs-dir", default="runs", help="where the sweep directory goes (default: runs/)")
    p.add_argument("--name", help="sweep directory name (default tune-<model>-<dataset>-<tuner>)")
    p.add_argument("--restart", action="store_true", help="delete the sweep's previous trials and start over")
    p.add_argument("--no-retrain", action="store_true", help="do not retrain the best trial into <sweep>/best/")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs per trial")
    p.add_argument("--trials-per-process", type=int, metavar="N",
                   help="run N trials per fresh process (bounded memory over long sweeps)")
    p.add_argument("--worker-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="distributed sweeps: the chief gives the trial of a worker silent this long to another")
    p.add_argument("--report", metavar="SWEEP_DIR",
                   help="rebuild the table, plots and summary of a sweep, with hyperparameter importances, a parallel "
                        "coordinates plot and every trial's learning curve")
    p.add_argument("--top", type=int, default=5, help="best trials to print")
    p.add_argument("--verbose", "-v", action="count", default=0, help="-v: a line per epoch; -vv: progress bars")
    p.add_argument("--quiet", "-q", action="store_true", help="no plan and no line per trial: only the summary")


@command("tune", _tune_args)
def cmd_tune(args: argparse.Namespace) -> int:
    """Search a model's hyperparameters with Keras-Tuner (resumable: re-run the same command)."""
    from zoo.tuning import report, tune

    if args.report:
        sweep = report(args.report)
        print(sweep.summary(args.top))
        importance = sweep.dir / "importance.json"
        if importance.exists():
            import json

            data = json.loads(importance.read_text())
            print("hyperparameter importance (" + data["method"] + "):")
            for name, share in data["importance"].items():
                print(f"  {name:24} {share:.3f}")
        print(f"figures: {', '.join(p.name for p in sorted(sweep.dir.glob('*.png')))} in {sweep.dir}")
        return 0
    if not args.model:
        raise ZooError("give a model to tune (or --report SWEEP_DIR)")
    fixed = hp_options(args)
    space = parse_sets(args.space) if args.space else {}
    try:
        sweep = tune(args.model, args.dataset, tuner=args.tuner, max_trials=args.max_trials,
                     objective=args.objective or "val_loss", worker_timeout=args.worker_timeout,
                     runs_dir=args.runs_dir, name=args.name, restart=args.restart, fixed=fixed, space=space,
                     tune_params=args.tune, space_file=args.space_file, median_stopping=args.median_stopping,
                     median_min_trials=args.median_min_trials, hyperband_factor=args.hyperband_factor,
                     max_failures=args.max_failures, retrain=not args.no_retrain, tensorboard=args.tensorboard,
                     verbose=-1 if args.quiet else args.verbose, trials_per_process=args.trials_per_process,
                     **data_options(args))
    except KeyboardInterrupt:
        print("zoo: sweep interrupted; finished trials are kept. Re-run the same command to resume.", file=sys.stderr)
        return 130
    print(f"sweep directory: {sweep.dir}")
    from zoo.tuning.sweep import _is_worker

    if _is_worker():
        import os

        mine = [str(r["trial_id"]) for r in sweep.rows if r.get("tuner_id") == os.environ.get("KERASTUNER_TUNER_ID")]
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')} done; ran trials {', '.join(mine) or 'none'}. "
              "The chief writes the trials table and plots.")
        return 0
    print(sweep.summary(args.top))
    print(f"trials table: {sweep.dir / 'trials.csv'}")
    if sweep.best_run is not None:
        kept = sweep.best_run.metrics.get("monitor", {})
        at = f" ({kept['metric']} {kept['kept']:.4f} at epoch {kept['kept_epoch']})" if "kept" in kept else ""
        print(f"best model retrained: {sweep.best_run.dir}{at}")
        for k, v in sweep.best_run.metrics.items():
            if k.startswith("test_"):
                print(f"  {k:24} {v:.4f}" if isinstance(v, float) else f"  {k:24} {v}")
    return 0
