"""RBM (zoo, Keras fit + CD-1) against scikit-learn's BernoulliRBM on binarised MNIST.

Same hidden units, learning rate, batch size and epochs; plain SGD for both (no
momentum, no weight decay), weights initialised N(0, 0.01) with zero biases for
both. Prints seconds per epoch and test reconstruction error (mean squared error
of the mean-field reconstruction, computed by the same NumPy code for both), and
the ratios. scikit-learn's BernoulliRBM always uses persistent CD (PCD-1); the
zoo RBM runs CD-1 and, for a like-for-like row, PCD-1.

Each library gets the same 0/1 pixels in the type it reads best, prepared before
its clock starts: float32 for scikit-learn (it computes in the input's float type
and would turn bytes into float64), uint8 for the zoo (its model casts in the
graph; a quarter of the bytes for Keras to copy into a tensor and gather per
batch). `--zoo-input float32` gives the zoo scikit-learn's array instead.

    python benchmarks/rbm_vs_sklearn.py [--hidden 256 --epochs 5 --batch-size 100 --lr 0.1 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _mnist import load_mnist  # noqa: E402


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reconstruction_error(x, kernel, hidden_bias, visible_bias) -> float:
    h = sigmoid(x @ kernel + hidden_bias)
    return float(np.mean((x - sigmoid(h @ kernel.T + visible_bias)) ** 2))


class Result(NamedTuple):
    epoch: float  # wall-clock fit time / epochs
    steady: float  # mean wall-clock time of the epochs after the first (the zoo builds its graph in the first)
    cpu: float  # process CPU time (all threads) / epochs
    error: float  # test reconstruction MSE after the last epoch
    setup: float | None  # the zoo's fit time before its first epoch
    curve: list[tuple[float, float]]  # (seconds since the fit started, test MSE) at the end of each epoch


def run_sklearn(xtr, xte, args) -> Result:
    """scikit-learn builds nothing first and reads the array in place, so its two per-epoch
    figures are the same and it has no set-up figure; its curve has the last epoch only."""
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=args.hidden, learning_rate=args.lr, batch_size=args.batch_size,
                       n_iter=args.epochs, random_state=args.seed)
    started, cpu = time.perf_counter(), time.process_time()
    rbm.fit(xtr)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    err = reconstruction_error(xte, rbm.components_.T, rbm.intercept_hidden_, rbm.intercept_visible_)
    return Result(seconds / args.epochs, seconds / args.epochs, cpu / args.epochs, err, None, [(seconds, err)])


class EpochTimer:
    """Times each epoch and copies the RBM's weights at its end (about a megabyte, inside the
    timed fit), so the test error after every epoch can be computed once the clock stops."""

    def __init__(self):
        import keras

        class _CB(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                self.train_begin = time.perf_counter()

            def on_epoch_begin(cb, epoch, logs=None):
                cb.t = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                rbm = cb.model.rbm
                weights = [keras.ops.convert_to_numpy(w) for w in (rbm.kernel, rbm.hidden_bias, rbm.visible_bias)]
                self.ends.append((time.perf_counter(), weights))
                self.times.append(self.ends[-1][0] - cb.t)

        self.times: list[float] = []
        self.ends: list[tuple[float, list[np.ndarray]]] = []
        self.callback = _CB()


def run_zoo(xtr, xte, args, persistent: bool) -> Result:
    import keras

    from zoo.plugins.rbm_layers import rbm_model

    keras.utils.set_random_seed(args.seed)
    model = rbm_model((xtr.shape[1],), args.hidden, persistent=persistent, n_chains=args.batch_size,
                      weight_decay=0.0, seed=args.seed)
    model.compile(optimizer=keras.optimizers.SGD(args.lr), steps_per_execution=args.steps_per_execution)
    timer = EpochTimer()
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(xtr, batch_size=args.batch_size, epochs=args.epochs, verbose=0, shuffle=True, callbacks=[timer.callback])
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    curve = [(end - started, reconstruction_error(xte, *weights)) for end, weights in timer.ends]
    steady = float(np.mean(timer.times[1:])) if len(timer.times) > 1 else timer.times[0]
    # before the first epoch: Keras's adapter copies the array into a TensorFlow tensor
    return Result(total / args.epochs, steady, cpu / args.epochs, curve[-1][1], timer.train_begin - started, curve)


def time_to_error(curve: list[tuple[float, float]], target: float) -> tuple[int, float] | None:
    """(epochs, seconds) at the first epoch end whose test error is at most `target`."""
    return next(((i + 1, t) for i, (t, err) in enumerate(curve) if err <= target), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--limit", type=int, help="training examples (default: all 60,000)")
    p.add_argument("--steps-per-execution", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of the three models, order reversed every other run; the summary takes medians")
    p.add_argument("--zoo-input", choices=("uint8", "float32"), default="uint8",
                   help="the type of the zoo's training array (scikit-learn's is float32)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    xtr, _, xte, _ = load_mnist(args.data_dir, binarize=True, limit=args.limit)
    xtr_zoo = xtr.astype(args.zoo_input)  # the same 0/1 values
    print(f"binarised MNIST: {len(xtr)} train, {len(xte)} test; hidden={args.hidden} lr={args.lr} "
          f"batch={args.batch_size} epochs={args.epochs}; steps_per_execution={args.steps_per_execution}; "
          f"zoo input {args.zoo_input}; "
          f"load average {os.getloadavg()[0]:.1f}")
    runs = {
        "sklearn BernoulliRBM (PCD-1)": lambda: run_sklearn(xtr, xte, args),
        "zoo RBM (CD-1)": lambda: run_zoo(xtr_zoo, xte, args, persistent=False),
        "zoo RBM (PCD-1)": lambda: run_zoo(xtr_zoo, xte, args, persistent=True),
    }
    names = list(runs)
    figures: dict[str, list[Result]] = {name: [] for name in names}
    print(f"{'run':>3s} {'model':28s} {'s/epoch':>8s} {'s/epoch*':>9s} {'cpu s/epoch':>12s} {'test recon. MSE':>16s} "
          f"{'set-up s':>9s}")
    for r in range(args.repeats):  # interleaved, against the machine's drift
        for name in names if r % 2 == 0 else names[::-1]:
            res = runs[name]()
            figures[name].append(res)
            setup = "-" if res.setup is None else f"{res.setup:.2f}"
            print(f"{r + 1:3d} {name:28s} {res.epoch:8.2f} {res.steady:9.2f} {res.cpu:12.2f} {res.error:16.5f} "
                  f"{setup:>9s}")
    sk = figures[names[0]]
    print(f"\nmedians over {args.repeats} runs; speed-up = scikit-learn's s/epoch over the zoo's, per run:")
    for name in names[1:]:
        zoo = figures[name]
        wall = [a.epoch / b.epoch for a, b in zip(sk, zoo)]
        steady = [a.epoch / b.steady for a, b in zip(sk, zoo)]
        cpu = [a.cpu / b.cpu for a, b in zip(sk, zoo)]
        err = statistics.median(b.error / a.error for a, b in zip(sk, zoo))
        print(f"  {name:16s} wall speed-up x{statistics.median(wall):.2f} (runs {', '.join(f'{w:.2f}' for w in wall)}), "
              f"after the first epoch x{statistics.median(steady):.2f}, CPU x{statistics.median(cpu):.2f}; "
              f"error ratio {err:.3f}")
        reached = [(time_to_error(b.curve, a.error), a.curve[-1][0]) for a, b in zip(sk, zoo)]
        if all(hit for hit, _ in reached):
            epochs = statistics.median(hit[0] for hit, _ in reached)
            print(f"  {'':16s} time to scikit-learn's final test error: reached after {epochs:g} of {args.epochs} "
                  f"epochs, speed-up x{statistics.median(sk_time / hit[1] for hit, sk_time in reached):.2f} "
                  f"(scikit-learn's whole fit over the zoo's time from fit start to that epoch's end)")
        else:
            print(f"  {'':16s} scikit-learn's final test error not reached in {args.epochs} epochs in every run")
    print("s/epoch: wall-clock fit time / epochs (zoo: includes building the graph); s/epoch*: zoo epochs after "
          "the first; cpu s/epoch: process CPU time (all threads) / epochs; error ratio < 1: zoo reconstructs better; "
          "set-up s: zoo fit time before the first epoch (copying the array into a tensor)")


if __name__ == "__main__":
    main()
