"""Greedy layer-wise pretraining shared by the DBN and the deep autoencoders:
the hyperparameters, the RBM stack, and copying pretrained weights into a
feed-forward network (unrolling). Keras is imported only when used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.spec import Float, Int

#: CD updates per graph call (Keras steps_per_execution) when training an RBM: a CD step is a
#: few small matrix products, so Keras's per-call work matters (100 measured ~14% faster than 10)
STEPS_PER_EXECUTION = 100

#: pretraining hyperparameters; pretrain_epochs=0 turns pretraining off (same network, random start)
PRETRAIN_DEFAULTS = {
    "pretrain_epochs": 10,  # per layer
    "pretrain_learning_rate": 0.1,  # the RBMs' SGD learning rate (Hinton 2010: 0.1 for binary units)
    # Hinton & Salakhutdinov's rbm.m: momentum 0.5, then 0.9 after 5 epochs; batches of 100
    "pretrain_momentum": 0.5,
    "pretrain_final_momentum": 0.9,
    "pretrain_momentum_epochs": 5,
    "pretrain_batch_size": 100,
    "cd_k": 1,
    "persistent": False,
    "weight_decay": 2e-4,
    "propagate": "probabilities",  # or samples: what each RBM passes up to the next
    "visible": "auto",  # first RBM: bernoulli for inputs in [0, 1], gaussian otherwise
    "gaussian_lr_scale": 0.01,  # layers with Gaussian units learn 100x slower (H&S 2006: 0.001 vs 0.1)
}

PRETRAIN_SEARCH_SPACE = {
    "pretrain_learning_rate": Float(1e-3, 0.3, sampling="log"),
    "pretrain_epochs": Int(0, 30, step=5),
    "cd_k": Int(1, 5),
}


def layer_widths(hp: Mapping[str, Any], key: str = "widths") -> list[int]:
    """A list hyperparameter of positive layer sizes, checked."""
    try:
        widths = [int(w) for w in hp[key]]
    except (TypeError, ValueError):
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise ZooError(f"{key} must be a non-empty list of positive layer sizes (e.g. --set {key}=500,500), "
                       f"got {hp[key]!r}")
    return widths


def pretrain_rbms(x: np.ndarray, sizes: Sequence[int], hp: Mapping[str, Any], run_dir: str | Path | None, *,
                  top_hidden: str = "bernoulli", seed: int = 0, verbose: Any = 0) -> list:
    """Greedy stack of RBMs on `x` with the pretraining hyperparameters; returns the
    RBM layers and records each one's history in run_dir/pretraining.json."""
    import time

    from zoo.plugins import rbm_layers
    from zoo.quiet import say

    if hp["propagate"] not in ("probabilities", "samples"):
        raise ZooError(f"propagate must be probabilities or samples, got {hp['propagate']!r}")
    started = [time.perf_counter()]

    def layer_done(i: int, model, inputs, history) -> None:
        error = history.get("reconstruction_error") or history.get("loss") or [float("nan")]
        say(f"pretraining RBM {i}/{len(sizes)} ({inputs.shape[1]}-{model.rbm.units}): {hp['pretrain_epochs']} epochs "
            f"in {time.perf_counter() - started[0]:.1f} s, reconstruction error {error[-1]:.4f}")
        started[0] = time.perf_counter()

    say(f"pretraining {len(sizes)} RBMs greedily, layer by layer ({hp['pretrain_epochs']} epochs each)")
    stack = rbm_layers.train_stack(
        x, list(sizes), propagate=hp["propagate"], visible=hp["visible"], top_hidden=top_hidden,
        gaussian_lr_scale=float(hp["gaussian_lr_scale"]), learning_rate=float(hp["pretrain_learning_rate"]),
        seed=seed, epochs=int(hp["pretrain_epochs"]), batch_size=int(hp["pretrain_batch_size"]),
        momentum=float(hp["pretrain_momentum"]), final_momentum=float(hp["pretrain_final_momentum"]),
        momentum_epochs=int(hp["pretrain_momentum_epochs"]), cd_k=int(hp["cd_k"]), persistent=bool(hp["persistent"]),
        weight_decay=float(hp["weight_decay"]), verbose=verbose, on_layer=layer_done)
    if run_dir is not None:
        write_history(run_dir, {f"rbm{i}": history for i, (_, history) in enumerate(stack, start=1)})
    return [model.rbm for model, _ in stack]


def write_history(run_dir: str | Path, histories: Mapping[str, Any]) -> None:
    Path(run_dir, "pretraining.json").write_text(json.dumps(histories, indent=2))


def copy_rbm(layer, rbm, *, transpose: bool = False) -> None:
    """An RBM's weights into a Dense layer: up (kernel, hidden bias) or, transposed,
    down (kernel^T, visible bias) for a decoder."""
    kernel = np.asarray(rbm.kernel)
    if transpose:
        layer.set_weights([kernel.T, np.asarray(rbm.visible_bias)])
    else:
        layer.set_weights([kernel, np.asarray(rbm.hidden_bias)])
