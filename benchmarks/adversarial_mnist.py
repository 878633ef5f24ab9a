"""Standard vs adversarially trained small CNN on MNIST: clean and robust accuracy.

    python benchmarks/adversarial_mnist.py --data-dir ../shared/data
    python benchmarks/adversarial_mnist.py --data-dir ../shared/data --attack pgd --eps 0.1 --steps 7

Both models train through zoo.train (the one training path) on the real MNIST
(IDX files under DATA_DIR/mnist/); the adversarial one with `adversarial=...`,
i.e. zoo.adversarial.AdversarialTrainer. Both are then attacked on the official
test set with FGSM at eps 0.1, 0.2, 0.3 and PGD-40 (step 0.01, random start) at
eps 0.3 (Madry et al.'s MNIST setting), and the figures are printed as a table.
Targets for the adversarially trained model: clean >= 98.5%, FGSM eps=0.1 >= 90%.

The CNN is defined here as a ModelSpec passed straight to zoo.train (not
registered): conv 32 -> pool -> conv 64 -> pool -> dense 128 -> softmax.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.spec import DataSpec, ModelSpec  # noqa: E402


def build_cnn(hp, data_spec: DataSpec):
    """A small LeNet-like CNN (about 225k weights)."""
    import keras

    from zoo.layers import output_head

    inputs = keras.Input(shape=data_spec.input_shape, name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense1")(x)
    return keras.Model(inputs, output_head(x, data_spec), name="small_cnn")


SMALL_CNN = ModelSpec(name="small_cnn", family="cnn", summary="small CNN for the adversarial benchmark",
                      tasks=("classification",), build=build_cnn, input_ranks=(3,),
                      defaults={"batch_size": 128, "epochs": 6, "patience": 0})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--attack", default="fgsm", choices=("fgsm", "pgd"), help="attack used for training")
    p.add_argument("--eps", type=float, default=0.1, help="training eps")
    p.add_argument("--steps", type=int, default=7, help="PGD training steps")
    p.add_argument("--random-start", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--limit", type=int, help="training examples (default: all)")
    p.add_argument("--test-limit", type=int, help="test examples attacked (default: all 10,000)")
    p.add_argument("--runs-dir", default="runs/benchmark-adversarial")
    p.add_argument("--skip-standard", action="store_true")
    args = p.parse_args()

    from zoo.adversarial import robustness
    from zoo.data import load
    from zoo.training import train

    dataset = load("mnist", data_dir=args.data_dir, batch_size=128, limit=args.limit)
    x_test, y_test = dataset.arrays["test"]
    if args.test_limit:
        x_test, y_test = x_test[:args.test_limit], y_test[:args.test_limit]
    print(f"MNIST: {dataset.spec.sizes} examples; attacking {len(x_test)} test images", flush=True)

    adversarial = {"attack": args.attack, "eps": args.eps, "steps": args.steps, "random_start": args.random_start}
    setups = [] if args.skip_standard else [("standard", None)]
    setups.append((f"adversarial ({args.attack}, eps {args.eps:g})", adversarial))
    rows = []
    for label, adv in setups:
        started = time.perf_counter()
        run = train(SMALL_CNN, dataset, runs_dir=args.runs_dir, epochs=args.epochs, verbose=2,
                    adversarial=adv, run_name=("adv" if adv else "std") + time.strftime("-%H%M%S"))
        trained = time.perf_counter() - started
        started = time.perf_counter()
        fgsm, _ = robustness(run.model, x_test, y_test, eps=(0.1, 0.2, 0.3), attacks=("fgsm",), clip=(0.0, 1.0))
        pgd, _ = robustness(run.model, x_test, y_test, eps=(0.3,), attacks=("pgd",), steps=40, step_size=0.01,
                            clip=(0.0, 1.0))
        figures = {**fgsm, **pgd, "train_seconds": round(trained, 1),
                   "attack_seconds": round(time.perf_counter() - started, 1), "run_dir": str(run.dir)}
        (run.dir / "benchmark.json").write_text(json.dumps(figures, indent=2))
        rows.append((label, figures))
        print(label, json.dumps(figures), flush=True)

    cols = ("clean_accuracy", "fgsm_eps0.1_accuracy", "fgsm_eps0.2_accuracy", "fgsm_eps0.3_accuracy",
            "pgd40_eps0.3_accuracy")
    heads = ("clean", "FGSM 0.1", "FGSM 0.2", "FGSM 0.3", "PGD-40 0.3", "train s")
    width = max(len(r[0]) for r in rows)
    print()
    print("model".ljust(width), *(h.rjust(10) for h in heads))
    for label, f in rows:
        print(label.ljust(width), *(f"{100 * f[c]:9.2f}%" for c in cols), f"{f['train_seconds']:10.0f}")


if __name__ == "__main__":
    main()
