"""A command plugin and a callback plugin.

`zoo centres RUN_DIR` prints where an rbf-net run put its centres and how wide
they are. `--callback epoch-seconds` adds each epoch's wall time to the history."""

from __future__ import annotations

import argparse
import time

from zoo.commands import command, table
from zoo.errors import ZooError


def _centres_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory of rbf-net")
    p.add_argument("--top", type=int, default=10, help="centres to show (the widest first)")


@command("centres", _centres_args)
def cmd_centres(args: argparse.Namespace) -> int:
    """Show an RBF network's centres: their norm and learned width, widest first."""
    import numpy as np

    from zoo.training import Run

    run = Run.load(args.run_dir)
    if run.config["model"] != "rbf-net":
        raise ZooError(f"{args.run_dir!r} is a {run.config['model']} run, not an rbf-net one")
    layer = run.model.get_layer("rbf")
    centres, widths = np.asarray(layer.centers), np.exp(np.asarray(layer.log_sigma))
    order = np.argsort(-widths)[: args.top]
    print(table([(int(i), f"{np.linalg.norm(centres[i]):.3f}", f"{widths[i]:.3f}") for i in order],
                ("centre", "norm", "width")))
    return 0


def epoch_seconds():
    """A Keras callback adding `epoch_seconds` (wall time) to every epoch's logs."""
    import keras

    class EpochSeconds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self.started

    return EpochSeconds()
