"""Restricted Boltzmann machines and deep belief networks.

rbm: one RBM (Smolensky 1986) trained by contrastive divergence CD-k (Hinton 2002)
or persistent CD (Tieleman 2008), with SGD, momentum and weight decay, through
Keras `fit` (a custom `train_step`). Binary (Bernoulli) visible units for data in
[0, 1], Gaussian visible units for standardised data. Predicting gives the hidden
probabilities: the feature transform.

dbn: a deep belief network classifier (Hinton, Osindero & Teh 2006): RBMs trained
greedily layer by layer, each on the previous one's hidden activations, unrolled
into a sigmoid feed-forward network and fine-tuned by backpropagation (as
Hinton & Salakhutdinov 2006 did for MNIST). `pretrain_epochs=0` trains the same
network from a random start, for comparison.

The Keras classes live in zoo.plugins.rbm_layers, imported when a model is built
and, through the spec's `keras_modules`, before a saved RBM is loaded; listing
and filtering specs stays free of TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.plugins.pretraining import (PRETRAIN_DEFAULTS, PRETRAIN_SEARCH_SPACE, STEPS_PER_EXECUTION, copy_rbm,
                                     layer_widths, pretrain_rbms)
from zoo.plugins.representation_figures import Outputs, register
from zoo.spec import Boolean, DataSpec, Figure, Float, Int, ModelSpec, Recipe


def _layers():
    """zoo.plugins.rbm_layers, imported on first use (it imports Keras)."""
    from zoo.plugins import rbm_layers

    return rbm_layers

# --- one RBM -----------------------------------------------------------------------

RBM_DEFAULTS = {
    # Hinton's practical guide (2010) and rbm.m (Hinton & Salakhutdinov 2006): SGD, learning rate 0.1,
    # momentum 0.5 then 0.9 after 5 epochs, weight decay 2e-4, batches of 100
    "optimizer": "momentum",
    "momentum": 0.5,
    "final_momentum": 0.9,
    "momentum_epochs": 5,
    "learning_rate": 0.1,
    "batch_size": 100,
    "epochs": 20,
    "patience": 5,
    "units": 64,
    "visible": "auto",  # bernoulli for data in [0, 1], gaussian otherwise (use a ~10x lower learning rate)
    "cd_k": 1,
    "persistent": False,
    "weight_decay": 2e-4,
    "sample_visible": False,  # CD: negative phase from visible means (False) or samples
    "steps_per_execution": STEPS_PER_EXECUTION,  # CD updates per graph call
}

RBM_SEARCH_SPACE = {
    "units": Int(16, 1024, sampling="log"),
    "learning_rate": Float(1e-3, 0.3, sampling="log"),
    "cd_k": Int(1, 5),
    "persistent": Boolean(),
    "weight_decay": Float(0.0, 1e-3),
}


def resolve_visible(hp, data_spec: DataSpec) -> str:
    """The visible unit type: Bernoulli for inputs in [0, 1], Gaussian otherwise."""
    visible = hp["visible"]
    if visible == "auto":
        low_high = data_spec.value_range
        return "bernoulli" if low_high and low_high[0] >= 0 and low_high[1] <= 1 else "gaussian"
    if visible not in _layers().UNIT_TYPES:
        raise ZooError(f"visible must be auto, bernoulli or gaussian, got {visible!r}")
    return visible


def build_rbm(hp, data_spec: DataSpec):
    """inputs -> flatten -> RBM(units); fit runs CD-k / PCD-k."""
    return _layers().rbm_model(data_spec.input_shape, int(hp["units"]), name="rbm",
                                visible=resolve_visible(hp, data_spec), cd_k=int(hp["cd_k"]),
                                persistent=bool(hp["persistent"]), n_chains=int(hp["batch_size"]),
                                weight_decay=float(hp["weight_decay"]), sample_visible=bool(hp["sample_visible"]))


def rbm_compile_args(hp, data_spec: DataSpec) -> dict[str, Any]:
    """CD computes its own update and reports its own metrics: no compiled loss."""
    return {"loss": None, "metrics": None, "steps_per_execution": int(hp["steps_per_execution"])}


def rbm_pretrain(model, dataset, hp, run_dir) -> None:
    """Before fit: start the visible biases at the training data's statistics."""
    _layers().init_visible_bias(model.rbm, dataset.arrays["train"][0])


def rbm_outputs(model, x: np.ndarray) -> Outputs:
    rbm = model.rbm
    flat = np.asarray(x, "float32").reshape(len(x), -1)
    codes = _layers().transform(rbm, flat)
    recon = np.asarray(rbm.reconstruct(flat)).reshape(x.shape)
    return Outputs(filters=np.asarray(rbm.kernel), reconstructions=recon, codes=codes)


RBM_VARIANTS = {
    "rbm": ({}, "Restricted Boltzmann machine trained by contrastive divergence CD-k (binary or Gaussian visible)"),
    "rbm-pcd": ({"persistent": True}, "Restricted Boltzmann machine trained by persistent contrastive divergence"),
    "grbm": ({"visible": "gaussian", "learning_rate": 0.01},
             "Gaussian-Bernoulli RBM for real-valued (standardised) inputs"),
}


#: Hinton & Salakhutdinov 2006's rbm.m on MNIST (the zoo's defaults follow it; the paper trains 1000 hidden units)
RBM_PAPER = Recipe(
    name="paper",
    summary="Hinton & Salakhutdinov 2006, rbm.m: CD-1, rate 0.1, momentum 0.5 then 0.9 after 5 epochs, weight cost "
            "2e-4, batches of 100, 10 epochs, 1000 hidden units on MNIST",
    hyperparameters={"units": 1000, "epochs": 10, "patience": 0},
    dataset="mnist",
    budgets={"quick": {"epochs": 1, "limit": 10000}, "paper": {}},
    notes="rbm.m itself: the defaults are its settings. It reports no test figure; "
          "benchmarks/rbm_vs_sklearn.py sets the zoo's RBM beside scikit-learn's BernoulliRBM (docs/REPRODUCTIONS.md).",
    reference="Hinton & Salakhutdinov 2006 (rbm.m); Hinton 2010")


def _rbm_spec(name: str, overrides: dict, summary: str) -> ModelSpec:
    return ModelSpec(name=name, family="rbm", summary=summary, tasks=("features",), build=build_rbm,
                     defaults={**RBM_DEFAULTS, **overrides}, search_space=RBM_SEARCH_SPACE, input_ranks=None,
                     capabilities=frozenset({"unsupervised", "generative"}), default_dataset="digits",
                     reference="Smolensky 1986; Hinton 2002 (CD); Tieleman 2008 (PCD); Hinton 2010 (practical guide)",
                     pretrain=rbm_pretrain, compile_args=rbm_compile_args, own_train_step=True,  # CD-k
                     keras_modules=("zoo.plugins.rbm_layers",), recipes={"paper": RBM_PAPER} if name == "rbm" else {})


rbm = _rbm_spec("rbm", *RBM_VARIANTS["rbm"])
rbm_pcd = _rbm_spec("rbm-pcd", *RBM_VARIANTS["rbm-pcd"])
grbm = _rbm_spec("grbm", *RBM_VARIANTS["grbm"])


# --- deep belief network ------------------------------------------------------------

DBN_DEFAULTS = {
    "widths": [500, 500, 2000],  # Hinton et al. 2006: 784-500-500-2000-10 on MNIST
    "dropout": 0.0,
    # fine-tuning: adam measured better than SGD+momentum with and without pretraining
    # (benchmarks/RESULTS-rbm.md); --optimizer momentum --set momentum=0.9 --lr 0.05 for SGD
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 100,
    "epochs": 20,
    "patience": 10,
    **PRETRAIN_DEFAULTS,
}

DBN_SEARCH_SPACE = {
    "learning_rate": Float(1e-3, 0.3, sampling="log"),
    "dropout": Float(0.0, 0.5, step=0.1),
    **PRETRAIN_SEARCH_SPACE,
}


def build_dbn(hp, data_spec: DataSpec):
    """inputs -> flatten -> [Dense(sigmoid) -> (dropout)] per RBM -> output head."""
    import keras

    from zoo.layers import output_head

    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    for i, width in enumerate(layer_widths(hp), start=1):
        x = keras.layers.Dense(width, activation="sigmoid", name=f"dense{i}")(x)
        if float(hp["dropout"]):
            x = keras.layers.Dropout(float(hp["dropout"]), name=f"dense{i}_dropout")(x)
    return keras.Model(inputs, output_head(x, data_spec), name="dbn")


def dbn_pretrain(model, dataset, hp, run_dir) -> None:
    """Greedy RBM pretraining, then the RBMs' weights into dense1..denseN."""
    if int(hp["pretrain_epochs"]) <= 0:
        return
    rbms = pretrain_rbms(dataset.arrays["train"][0], layer_widths(hp), hp, run_dir, seed=dataset.seed)
    for i, rbm in enumerate(rbms, start=1):
        copy_rbm(model.get_layer(f"dense{i}"), rbm)
    if run_dir is not None and dataset.spec.input_kind == "image":
        from zoo.plugins.representation_figures import filters_grid

        filters_grid(np.asarray(rbms[0].kernel), dataset.spec.input_shape, Path(run_dir) / "rbm1_filters.png",
                     title="RBM 1 filters after pretraining")


def dbn_outputs(model, x: np.ndarray) -> Outputs:
    import keras

    from zoo.data import predict

    hidden = [layer for layer in model.layers if layer.name.startswith("dense") and "_" not in layer.name]
    top = keras.Model(model.inputs, hidden[-1].output)
    return Outputs(filters=np.asarray(hidden[0].kernel), codes=predict(top, x))


#: Hinton, Osindero & Teh 2006: 784-500-500-2000, greedy pretraining, then fine-tuning (by backprop here)
DBN_PAPER = Recipe(
    name="paper",
    summary="Hinton, Osindero & Teh 2006: 784-500-500-2000 RBMs pretrained greedily for 30 epochs each, then "
            "fine-tuned (back-propagation of cross-entropy with SGD and momentum here, up-down in the paper)",
    hyperparameters={"widths": [500, 500, 2000], "pretrain_epochs": 30, "pretrain_learning_rate": 0.1,
                     "optimizer": "momentum", "learning_rate": 0.1, "batch_size": 100, "epochs": 50, "patience": 0},
    dataset="mnist",
    figure=Figure("test_error", 1.25, "Hinton, Osindero & Teh 2006, section 6 (up-down fine-tuning; Hinton & "
                  "Salakhutdinov 2006 report 1.2% for the same net fine-tuned by back-propagation)", dataset="mnist"),
    budgets={"quick": {"pretrain_epochs": 1, "epochs": 2, "limit": 10000}, "paper": {}},
    notes="The paper joins 10 label units to the top RBM and fine-tunes the generative model with the up-down "
          "algorithm (300 epochs); the zoo's dbn unrolls the RBMs into a sigmoid classifier with a softmax output and "
          "fine-tunes it by back-propagation of cross-entropy (SGD, momentum 0.9), as Hinton & Salakhutdinov 2006 did "
          "for their 1.2%. Pretraining uses rbm.m's settings (batches of 100, momentum 0.5 then 0.9) instead of the "
          "paper's balanced mini-batches of 10. 58,000 training images, 2,000 for validation.",
    validation=2000,
    reference="Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006")


dbn = ModelSpec(
    name="dbn",
    family="dbn",
    summary="Deep belief network: greedily pretrained RBM stack unrolled and fine-tuned as a classifier",
    tasks=("classification",),
    build=build_dbn,
    defaults=DBN_DEFAULTS,
    search_space=DBN_SEARCH_SPACE,
    input_ranks=None,
    capabilities=frozenset({"pretraining"}),
    default_dataset="digits",
    reference="Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006",
    pretrain=dbn_pretrain,
    recipes={"paper": DBN_PAPER},
)

register("rbm", rbm_outputs)
register("dbn", dbn_outputs)
