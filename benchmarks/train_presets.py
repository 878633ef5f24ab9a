"""Train (or take from a finished run) the small models shipped as presets, and write
them into plugins/presets/: NAME.weights.h5 (Keras's weights format) and NAME.json
(the data spec they were trained on). Prints what the spec's preset declares: the
file's SHA-256, the hyperparameters that fix its layout and the test figure measured.

    python benchmarks/train_presets.py                      # all four; MNIST from ../shared/data
    python benchmarks/train_presets.py mlp_digits --data-dir ~/data
    python benchmarks/train_presets.py lenet5_mnist --run runs/lenet5-paper   # a run already trained
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "plugins" / "presets"

#: file -> (model, dataset, recipe, hyperparameters, figure metric)
PRESETS = {
    "mlp_digits": ("mlp", "digits", None, {}, "test_accuracy"),
    "lstm_sines": ("lstm", "sines", None, {}, "test_mse"),
    "autoencoder_mnist": ("autoencoder", "mnist", None, {"units": 128, "depth": 2, "code_size": 16}, "test_mse"),
    "lenet5_mnist": ("lenet5", "mnist", "paper", {}, "test_accuracy"),
}


def layout(run) -> dict:
    """The run's hyperparameters that differ from its spec's defaults and are not training settings."""
    from zoo.spec import TRAINING_DEFAULTS

    defaults = run.spec.hyperparameters()
    return {k: v for k, v in run.hyperparameters.items() if k not in TRAINING_DEFAULTS and defaults.get(k) != v}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=list(PRESETS), help=f"of {', '.join(PRESETS)}")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--run", help="take the weights of this finished run instead of training (one name only)")
    p.add_argument("--runs", help="take the weights of the finished run directories RUNS/NAME instead of training")
    p.add_argument("--runs-dir", default="runs/presets")
    args = p.parse_args()

    from zoo import presets
    from zoo.training import Run, build_model, train

    for name in args.names:
        model, dataset, recipe, hp, metric = PRESETS[name]
        done = args.run or (args.runs and str(Path(args.runs) / name))
        run = Run.load(done) if done else train(model, dataset, recipe=recipe, data_dir=args.data_dir,
                                                 runs_dir=args.runs_dir, run_name=name, verbose=2, **hp)
        weights = OUT / f"{name}.weights.h5"
        bare = build_model(run.spec, run.hyperparameters, run.data_spec)  # uncompiled: no optimizer state in the file
        bare.set_weights(run.model.get_weights())
        bare.save_weights(weights)
        data = {k: v for k, v in run.config["data_spec"].items() if k != "sizes"}
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(json.dumps({"file": name, "run": str(run.dir), "bytes": weights.stat().st_size,
                          "sha256": presets.file_digest(weights), "hyperparameters": layout(run),
                          "recipe": run.config.get("recipe"), "epochs_run": run.metrics.get("epochs_run"),
                          "train_seconds": run.metrics.get("train_seconds"),
                          metric: run.metrics[metric]}, indent=1))


if __name__ == "__main__":
    main()
