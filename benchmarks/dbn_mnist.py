"""DBN classifier on MNIST: test error with and without greedy RBM pretraining.

The same network (784-500-500-2000-10 by default, sigmoid units), the same seed
and the same fine-tuning budget; only `pretrain_epochs` differs. Trains through
zoo.training on MNIST read from its IDX files (../shared/data/mnist by default).
Hinton, Osindero & Teh (2006) report 1.25% test error (generative up-down
fine-tuning); backpropagation fine-tuning reached 1.2% in Hinton & Salakhutdinov
(2006), with far longer training than the defaults here.

    python benchmarks/dbn_mnist.py [--limit 20000 --epochs 10 --pretrain-epochs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mnist import DEFAULT_DATA  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--widths", default="500,500,2000")
    p.add_argument("--limit", type=int, help="training examples (default: all)")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="per RBM")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--pretrain-batch-size", type=int, help="RBM mini-batch (default: the dbn spec's, 20)")
    p.add_argument("--optimizer", default="adam", help="fine-tuning optimizer (zoo names: adam, momentum, ...)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate (default: the dbn spec's, 1e-3)")
    p.add_argument("--runs-dir", default="runs/benchmarks")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from zoo.data import load
    from zoo.training import train

    data = load("mnist", data_dir=args.data_dir, limit=args.limit, seed=args.seed, batch_size=args.batch_size)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"MNIST: {data.spec.sizes['train']} train, {data.spec.sizes['val']} val, {data.spec.sizes['test']} test; "
          f"plan {'-'.join(map(str, [784, *widths, 10]))}; fine-tune {args.epochs} epochs ({args.optimizer}"
          f"{', lr ' + str(args.lr) if args.lr else ''}), pretraining {args.pretrain_epochs} epochs per RBM")
    extra = {"learning_rate": args.lr} if args.lr else {}
    if args.pretrain_batch_size:
        extra["pretrain_batch_size"] = args.pretrain_batch_size
    print(f"{'network':32s} {'test error':>10s} {'seconds':>8s}")
    for pretrain_epochs in (args.pretrain_epochs, 0):
        started = time.perf_counter()
        run = train("dbn", data, runs_dir=args.runs_dir, run_name=f"dbn-{args.optimizer}-pretrain{pretrain_epochs}",
                    seed=args.seed, verbose=0, widths=widths, epochs=args.epochs, pretrain_epochs=pretrain_epochs,
                    batch_size=args.batch_size, patience=0, optimizer=args.optimizer, **extra)
        label = f"DBN, {pretrain_epochs} pretraining epochs/layer" if pretrain_epochs else "same net, no pretraining"
        print(f"{label:32s} {100 * (1 - run.metrics['test_accuracy']):9.2f}% "
              f"{time.perf_counter() - started:8.1f}", flush=True)
    print("Hinton, Osindero & Teh 2006: 1.25% (full MNIST, long training)")


if __name__ == "__main__":
    main()
