"""Fashion-MNIST with a small VGG and resnet20: test accuracy and time per epoch.

    python benchmarks/fashion_small.py [--data-dir DIR] [--epochs 5] [--limit N] [--dataset fashion_mnist]

Reads Fashion-MNIST's four IDX files from DATA_DIR/fashion_mnist/ (default:
$ZOO_DATA_DIR, else ../shared/data beside the checkout), or a TFDS copy prepared
there; prints a message and exits 0 when the data is absent. Prints measured
figures; it is not a test.

`--dataset mnist` runs the same models on MNIST instead, which has Fashion-MNIST's
shapes and sizes (60,000 + 10,000 grey 28x28 images, 10 classes): its time per
epoch stands for Fashion-MNIST's, its accuracy does not (MNIST is easier).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (label, model, hyperparameters)
MODELS = (
    ("vgg11_bn width 0.25", "vgg11_bn", {"width": 0.25}),
    ("resnet20", "resnet20", {}),
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, help="at most this many training images (quicker runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="fashion_mnist",
                   help="fashion_mnist (default), or mnist as a same-shaped stand-in for timing")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from zoo.data import load
    from zoo.errors import ZooError
    from zoo.training import train

    candidates = [args.data_dir, os.environ.get("ZOO_DATA_DIR"), str(ROOT.parent / "shared" / "data")]
    dataset, where = None, None
    for candidate in [c for c in candidates if c]:
        try:
            dataset = load(args.dataset, data_dir=candidate, seed=args.seed, limit=args.limit, download=False)
            where = candidate
            break
        except ZooError:
            continue
    if dataset is None:
        print(f"{args.dataset} not found (IDX files under DATA_DIR/{args.dataset}/ or a prepared TFDS copy; "
              "give --data-dir or set ZOO_DATA_DIR); skipped.")
        return 0
    sizes = dataset.spec.sizes
    print(f"{args.dataset} from {where}: train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}")

    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    runs = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    for label, name, hp in MODELS:
        timer = EpochTimer()
        run = train(name, dataset, runs_dir=runs, seed=args.seed, verbose=0, callbacks=[timer],
                    epochs=args.epochs, **hp)
        steady = timer.seconds[1:] or timer.seconds
        print(f"{label:22} test accuracy {run.metrics['test_accuracy']:.4f}  epochs {run.metrics['epochs_run']}  "
              f"time/epoch {statistics.median(steady):.1f} s (first {timer.seconds[0]:.1f} s)  "
              f"parameters {run.model.count_params():,}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
