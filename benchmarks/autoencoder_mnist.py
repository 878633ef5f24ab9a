"""Deep autoencoder on MNIST against PCA with the same code size, with and without pretraining.

Trains through zoo.training (the one training path) on MNIST read from its IDX files
(../shared/data/mnist by default) and prints the test reconstruction error (mean
squared error per pixel, pixels in [0, 1]) of PCA and of each autoencoder start.
Hinton & Salakhutdinov (2006) used 784-1000-500-250-30; `--widths`, `--limit` and
the epoch counts shrink the run on a slow machine.

    python benchmarks/autoencoder_mnist.py [--limit 20000 --epochs 10 --pretrain-epochs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _mnist import DEFAULT_DATA  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--widths", default="1000,500,250")
    p.add_argument("--code-size", type=int, default=30)
    p.add_argument("--limit", type=int, help="training examples (default: all)")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="per pretrained layer")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--inits", default="random,rbm,autoencoders")
    p.add_argument("--runs-dir", default="runs/benchmarks")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from sklearn.decomposition import PCA

    from zoo.data import load
    from zoo.training import train

    data = load("mnist", data_dir=args.data_dir, limit=args.limit, seed=args.seed, batch_size=args.batch_size)
    xtr = data.arrays["train"][0].reshape(len(data.arrays["train"][0]), -1)
    xte = data.arrays["test"][0].reshape(len(data.arrays["test"][0]), -1)
    widths = [int(w) for w in args.widths.split(",")]
    plan = "-".join(map(str, [784, *widths, args.code_size]))
    print(f"MNIST: {len(xtr)} train, {data.spec.sizes['val']} val, {len(xte)} test; plan {plan}; "
          f"fine-tune {args.epochs} epochs (adam), pretraining {args.pretrain_epochs} epochs per layer")
    started = time.perf_counter()
    pca = PCA(args.code_size, random_state=args.seed).fit(xtr)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(xte)) - xte) ** 2))
    print(f"{'model':36s} {'test MSE':>9s} {'vs PCA':>7s} {'seconds':>8s}")
    print(f"{'PCA (' + str(args.code_size) + ' components)':36s} {pca_mse:9.5f} {1.0:7.2f} "
          f"{time.perf_counter() - started:8.1f}")
    for init in args.inits.split(","):
        started = time.perf_counter()
        run = train("autoencoder", data, runs_dir=args.runs_dir, run_name=f"autoencoder-{init}", seed=args.seed,
                    verbose=0, widths=widths, code_size=args.code_size, init=init, epochs=args.epochs,
                    pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, pretrain_batch_size=100,
                    patience=0)
        mse = run.metrics["test_mse"]
        label = {"random": "autoencoder, random start", "rbm": "autoencoder, stacked-RBM start",
                 "autoencoders": "autoencoder, stacked-AE start"}.get(init, init)
        print(f"{label:36s} {mse:9.5f} {mse / pca_mse:7.2f} {time.perf_counter() - started:8.1f}", flush=True)
    print("test MSE: mean squared error per pixel on the 10,000 test images; vs PCA < 1 is better than PCA")


if __name__ == "__main__":
    main()
