"""Resident memory over a sweep of many trials: it must stay flat.

Runs a random-search sweep (default 24 trials of a small MLP on xor, 1 epoch
each) and prints the process's resident set size after every trial, then the
growth per trial fitted over the second half of the sweep. `--no-clear`
disables keras.backend.clear_session between trials (for comparison).

    python benchmarks/tuning_memory.py
    python benchmarks/tuning_memory.py --trials 40 --no-clear
    python benchmarks/tuning_memory.py --trials-per-process 8

With `--trials-per-process N` the sweep runs N trials per fresh process (the
`zoo tune --trials-per-process` option); it prints the peak resident memory
of those processes and of this one, which does not import TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--dataset", default="xor")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--no-clear", action="store_true", help="skip keras.backend.clear_session between trials")
    p.add_argument("--trials-per-process", type=int, help="run the sweep N trials per fresh process")
    args = p.parse_args()
    if args.trials_per_process:
        return in_processes(args)

    import keras

    from zoo.tuning import tune
    from zoo.tuning.tuner import ZooTuner

    if args.no_clear:
        keras.backend.clear_session = lambda *a, **k: None
    samples: list[tuple[str, float, float]] = []
    started = time.perf_counter()
    original = ZooTuner.on_trial_end

    def on_trial_end(self, trial):
        original(self, trial)
        samples.append((trial.trial_id, rss_mib(), time.perf_counter() - started))
        print(f"trial {trial.trial_id:>3}  rss {samples[-1][1]:8.1f} MiB  t={samples[-1][2]:6.1f} s", flush=True)

    ZooTuner.on_trial_end = on_trial_end
    print(f"before the sweep: rss {rss_mib():.1f} MiB")
    tune("mlp", args.dataset, max_trials=args.trials, epochs=args.epochs, runs_dir=tempfile.mkdtemp(prefix="tmem-"),
         retrain=False, plots=False, space={"units": "8..64:8", "depth": "1..3"})
    rss = [s[1] for s in samples]
    half = rss[len(rss) // 2:]
    n = len(half)
    xs = list(range(n))
    mx, my = sum(xs) / n, sum(half) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, half)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    print()
    print(f"trials: {len(rss)}  clear_session: {'off' if args.no_clear else 'on'}")
    print(f"rss after trial 1: {rss[0]:.1f} MiB, after trial {len(rss) // 2 + 1}: {half[0]:.1f} MiB, "
          f"last: {rss[-1]:.1f} MiB, max: {max(rss):.1f} MiB")
    print(f"growth over the second half: {slope:+.2f} MiB per trial")


def in_processes(args: argparse.Namespace) -> None:
    import resource
    import sys

    from zoo.tuning import tune

    started = time.perf_counter()
    print(f"before the sweep: rss {rss_mib():.1f} MiB")
    sweep = tune("mlp", args.dataset, max_trials=args.trials, epochs=args.epochs, runs_dir=tempfile.mkdtemp(prefix="tmem-"),
                 retrain=False, plots=False, space={"units": "8..64:8", "depth": "1..3"},
                 trials_per_process=args.trials_per_process)
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"trials: {len(sweep.rows)} in batches of {args.trials_per_process}, {time.perf_counter() - started:.0f} s")
    print(f"peak rss of a trial process: {children_peak:.1f} MiB (largest over all batches)")
    print(f"this process: {rss_mib():.1f} MiB, TensorFlow imported here: {'tensorflow' in sys.modules}")


if __name__ == "__main__":
    main()
