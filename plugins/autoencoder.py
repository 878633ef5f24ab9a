"""Deep autoencoders: a symmetric encoder/decoder of any layer plan with a code layer.

The default plan is Hinton & Salakhutdinov's (2006) 784-1000-500-250-30 with
logistic hidden units and a linear code layer. Three starts, then end-to-end
fine-tuning by backpropagation through `fit`:
    init=random        Glorot-initialised weights
    init=autoencoders  greedy stacked autoencoders (Bengio et al. 2007): each layer
                       is trained to reconstruct its input, its code feeding the next
    init=rbm           stacked RBMs (Bernoulli, the top one with linear Gaussian hidden
                       units), unrolled into the encoder and, transposed, the decoder
`noise` makes it denoising (Vincent et al. 2008): input dropout ("masking") or
additive Gaussian noise, during training only.

The functional model names its layers so that others can cut it: the encoder
ends at the layer "code", the model's output layer is "reconstruction"
(see `encoder` and `decoder`). `autoencoder-classifier` puts a classifier on
the encoder of a pretrained autoencoder (the autoencoder as feature extractor).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.plugins.shipped import shipped
from zoo.plugins.pretraining import PRETRAIN_DEFAULTS, PRETRAIN_SEARCH_SPACE, copy_rbm, pretrain_rbms, write_history
from zoo.plugins.representation_figures import Outputs, register
from zoo.spec import Choice, DataSpec, Figure, Float, Int, ModelSpec, PerLayer, Recipe

INITS = ("random", "autoencoders", "rbm")
NOISE_TYPES = ("masking", "gaussian")

DEFAULTS = {
    "depth": 3,
    "units": 1000,  # first hidden width; each deeper layer halves it (1000-500-250)
    "widths": [],  # explicit hidden widths; overrides depth and units when set
    "code_size": 30,
    "activation": "sigmoid",
    "code_activation": "linear",
    "output_activation": "auto",  # sigmoid for inputs in [0, 1], linear otherwise
    "dropout": 0.0,
    "noise": 0.0,  # denoising: input corruption rate (masking) or stddev (gaussian)
    "noise_type": "masking",
    "init": "random",
    "batch_size": 64,
    **PRETRAIN_DEFAULTS,
}

SEARCH_SPACE = {
    "code_size": Int(2, 64, sampling="log"),
    "depth": Int(1, 4),
    "widths": PerLayer(Int(64, 1024, step=64)),  # encoder widths, one per layer (mirrored by the decoder)
    "learning_rate": Float(1e-4, 1e-2, sampling="log"),
    "dropout": Float(0.0, 0.5, step=0.1),
    "noise": Float(0.0, 0.5, step=0.1),
}


def hidden_widths(hp) -> list[int]:
    """Encoder hidden widths: `widths` when given, else units, units/2, ... (depth of them)."""
    if hp["widths"]:
        widths = [int(w) for w in hp["widths"]]
    else:
        widths = [max(1, int(hp["units"]) // 2 ** i) for i in range(int(hp["depth"]))]
    if any(w < 1 for w in widths) or int(hp["code_size"]) < 1:
        raise ZooError(f"autoencoder widths and code_size must be positive, got widths={widths}, "
                       f"code_size={hp['code_size']}")
    return widths


def output_activation(hp, data_spec: DataSpec) -> str:
    if hp["output_activation"] != "auto":
        return hp["output_activation"]
    low_high = data_spec.value_range
    return "sigmoid" if low_high and low_high[0] >= 0 and low_high[1] <= 1 else "linear"


def _check(hp) -> None:
    if hp["init"] not in INITS:
        raise ZooError(f"init must be one of {', '.join(INITS)}, got {hp['init']!r}")
    if hp["noise_type"] not in NOISE_TYPES:
        raise ZooError(f"noise_type must be one of {', '.join(NOISE_TYPES)}, got {hp['noise_type']!r}")
    if not 0 <= float(hp["noise"]) < (1 if hp["noise_type"] == "masking" else float("inf")):
        raise ZooError(f"noise must be >= 0 (and < 1 for masking), got {hp['noise']}")


def _noise(x, hp, name: str = "input_noise"):
    import keras

    rate = float(hp["noise"])
    if rate <= 0:
        return x
    if hp["noise_type"] == "gaussian":
        return keras.layers.GaussianNoise(rate, name=name)(x)
    return keras.layers.Dropout(rate, name=name)(x)


def _encoder_layers(x, hp, widths: list[int]):
    """flattened inputs -> encoder_dense1..N -> code (shared by the autoencoder and the classifier)."""
    import keras

    from zoo.layers import dense_block

    for i, width in enumerate(widths, start=1):
        x = dense_block(x, width, hp["activation"], f"encoder_dense{i}")
        if float(hp["dropout"]):
            x = keras.layers.Dropout(float(hp["dropout"]), name=f"encoder_dense{i}_dropout")(x)
    return keras.layers.Dense(int(hp["code_size"]), activation=hp["code_activation"], name="code")(x)


def build(hp, data_spec: DataSpec):
    """features -> flatten -> (noise) -> encoder -> code -> mirrored decoder -> reconstruction."""
    import keras

    from zoo.layers import dense_block

    _check(hp)
    widths = hidden_widths(hp)
    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    x = _encoder_layers(_noise(x, hp), hp, widths)
    for i, width in enumerate(reversed(widths), start=1):
        x = dense_block(x, width, hp["activation"], f"decoder_dense{i}")
        if float(hp["dropout"]):
            x = keras.layers.Dropout(float(hp["dropout"]), name=f"decoder_dense{i}_dropout")(x)
    n_inputs = int(np.prod(data_spec.input_shape))
    x = keras.layers.Dense(n_inputs, activation=output_activation(hp, data_spec), dtype="float32",
                           name="decoder_output")(x)
    outputs = keras.layers.Reshape(tuple(data_spec.input_shape), name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def encoder(model):
    """The encoder of an autoencoder (or classifier) built here: inputs -> code."""
    import keras

    return keras.Model(model.inputs, model.get_layer("code").output, name="encoder")


def decoder(model):
    """The decoder of an autoencoder built here: code -> reconstruction (shared weights)."""
    import keras

    code = model.get_layer("code")
    inputs = keras.Input(shape=(code.units,), name="code_input")
    x = inputs
    for layer in _decoder_dense_layers(model):
        x = layer(x)
    return keras.Model(inputs, model.get_layer("reconstruction")(x), name="decoder")


def _encoder_dense_layers(model) -> list:
    """encoder_dense1..N then code."""
    return _numbered(model, "encoder_dense") + [model.get_layer("code")]


def _decoder_dense_layers(model) -> list:
    """decoder_dense1..N then decoder_output: the mirror of `_encoder_dense_layers`."""
    return _numbered(model, "decoder_dense") + [model.get_layer("decoder_output")]


def _numbered(model, prefix: str) -> list:
    """Layers named prefix1, prefix2, ... in order."""
    found = {int(m.group(1)): layer for layer in model.layers if (m := re.fullmatch(prefix + r"(\d+)", layer.name))}
    return [found[i] for i in sorted(found)]


def unroll(model, rbms: list) -> None:
    """Stacked RBMs into the autoencoder: RBM i up into encoder layer i and,
    transposed, down into the mirrored decoder layer (Hinton & Salakhutdinov 2006)."""
    enc, dec = _encoder_dense_layers(model), _decoder_dense_layers(model)
    if len(rbms) != len(enc):
        raise ZooError(f"{len(rbms)} RBMs cannot fill an encoder of {len(enc)} layers")
    for i, rbm in enumerate(rbms):
        copy_rbm(enc[i], rbm)
        copy_rbm(dec[len(dec) - 1 - i], rbm, transpose=True)


def greedy_autoencoders(model, x: np.ndarray, hp, data_spec: DataSpec, *, verbose: Any = 0) -> dict:
    """Greedy stacked autoencoders (Bengio et al. 2007): train a one-hidden-layer
    autoencoder per level on the previous level's codes; copy its encoder half into
    the encoder and its decoder half into the mirrored decoder layer."""
    import time

    import keras

    from zoo.data import predict
    from zoo.quiet import say
    from zoo.training import make_optimizer

    enc, dec = _encoder_dense_layers(model), _decoder_dense_layers(model)
    inputs = np.asarray(x, "float32").reshape(len(x), -1)
    batch = int(hp["pretrain_batch_size"])
    histories = {}
    say(f"pretraining {len(enc)} autoencoders greedily, level by level ({hp['pretrain_epochs']} epochs each)")
    for i, (up, down) in enumerate(zip(enc, reversed(dec)), start=1):
        started = time.perf_counter()
        d = inputs.shape[1]
        visible = keras.Input(shape=(d,), name="visible")
        h = keras.layers.Dense(up.units, activation=up.activation, name="encode")(_noise(visible, hp))
        out = keras.layers.Dense(d, activation=down.activation, name="decode")(h)
        shallow = keras.Model(visible, out, name=f"autoencoder{i}")
        shallow.compile(optimizer=make_optimizer({**hp, "lr_schedule": "constant"}, 1), loss="mse")
        fit = shallow.fit(inputs, inputs, epochs=int(hp["pretrain_epochs"]), batch_size=batch, verbose=verbose)
        histories[f"autoencoder{i}"] = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
        say(f"pretraining autoencoder {i}/{len(enc)} ({inputs.shape[1]}-{up.units}): {hp['pretrain_epochs']} epochs in "
            f"{time.perf_counter() - started:.1f} s, reconstruction mse {histories[f'autoencoder{i}']['loss'][-1]:.4f}")
        up.set_weights(shallow.get_layer("encode").get_weights())
        down.set_weights(shallow.get_layer("decode").get_weights())
        if i < len(enc):
            inputs = predict(keras.Model(visible, h), inputs, 1024)
    return histories


def initialise(model, x: np.ndarray, hp, data_spec: DataSpec, run_dir: str | Path | None, seed: int = 0) -> None:
    """Apply the `init` start to a freshly built autoencoder."""
    _check(hp)
    if hp["init"] == "random" or int(hp["pretrain_epochs"]) <= 0:
        return
    if hp["init"] == "rbm":
        if hp["activation"] != "sigmoid" or hp["code_activation"] != "linear":
            raise ZooError("init=rbm unrolls binary RBMs with a linear top: use activation=sigmoid and "
                           "code_activation=linear")
        sizes = [layer.units for layer in _encoder_dense_layers(model)]
        unroll(model, pretrain_rbms(x, sizes, hp, run_dir, top_hidden="gaussian", seed=seed))
    else:
        histories = greedy_autoencoders(model, x, hp, data_spec)
        if run_dir is not None:
            write_history(run_dir, histories)


def pretrain(model, dataset, hp, run_dir) -> None:
    """ModelSpec hook: the chosen start before end-to-end fine-tuning."""
    initialise(model, dataset.arrays["train"][0], hp, dataset.spec, run_dir, seed=dataset.seed)


def outputs(model, x: np.ndarray) -> Outputs:
    """Filters, codes and reconstructions; a denoising autoencoder reconstructs from
    its inputs corrupted as in training (the input_noise layer applied), shown too."""
    import keras

    from zoo.data import predict

    first = _encoder_dense_layers(model)[0]
    corrupted = None
    noise = next((layer for layer in model.layers if layer.name == "input_noise"), None)
    if noise is not None:
        flat = np.asarray(x, "float32").reshape((len(x), *noise.input.shape[1:]))
        keras.utils.set_random_seed(0)
        corrupted = np.asarray(noise(flat, training=True)).reshape(x.shape)
    shown = x if corrupted is None else corrupted
    return Outputs(filters=np.asarray(first.kernel), reconstructions=predict(model, shown),
                   codes=predict(encoder(model), x), corrupted=corrupted)


# --- the encoder as a feature extractor ------------------------------------------------


def build_classifier(hp, data_spec: DataSpec):
    """features -> flatten -> encoder -> code -> (dropout) -> output head."""
    import keras

    from zoo.layers import output_head

    _check(hp)
    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    code = _encoder_layers(x, hp, hidden_widths(hp))
    if float(hp["dropout"]):
        code = keras.layers.Dropout(float(hp["dropout"]), name="code_dropout")(code)
    return keras.Model(inputs, output_head(code, data_spec), name="autoencoder_classifier")


def pretrain_classifier(model, dataset, hp, run_dir) -> None:
    """Train the autoencoder (its start, then `pretrain_epochs` of end-to-end fitting),
    then copy its encoder into the classifier; optionally freeze it."""
    import dataclasses

    from zoo.training import make_optimizer

    if int(hp["pretrain_epochs"]) <= 0:
        return
    x = dataset.arrays["train"][0]
    ae_spec = dataclasses.replace(dataset.spec, task="reconstruction")
    ae = build(hp, ae_spec)
    initialise(ae, x, hp, ae_spec, run_dir, seed=dataset.seed)
    ae.compile(optimizer=make_optimizer({**hp, "lr_schedule": "constant"}, 1), loss="mse")
    ae.fit(x, x, epochs=int(hp["pretrain_epochs"]), batch_size=int(hp["batch_size"]), verbose=0)
    for layer in _encoder_dense_layers(ae):
        target = model.get_layer(layer.name)
        target.set_weights(layer.get_weights())
        # fit has not traced its train function yet, so this takes effect without recompiling
        target.trainable = not hp["freeze_encoder"]
    if run_dir is not None:
        ae.save(Path(run_dir) / "autoencoder.keras")


def classifier_outputs(model, x: np.ndarray) -> Outputs:
    from zoo.data import predict

    first = _encoder_dense_layers(model)[0]
    return Outputs(filters=np.asarray(first.kernel), codes=predict(encoder(model), x))


# --- variants: one builder, a table of starts ---------------------------------------------

VARIANTS = {
    "autoencoder": ({"init": "random"}, "Deep autoencoder (Hinton & Salakhutdinov 2006 layer plan), random start"),
    "autoencoder-rbm": ({"init": "rbm"},
                        "Deep autoencoder pretrained as stacked RBMs, unrolled and fine-tuned (Hinton & Salakhutdinov 2006)"),
    "autoencoder-stacked": ({"init": "autoencoders"},
                            "Deep autoencoder pretrained greedily as stacked shallow autoencoders (Bengio et al. 2007)"),
    "denoising-autoencoder": ({"init": "autoencoders", "noise": 0.25},
                              "Stacked denoising autoencoder: inputs masked during training (Vincent et al. 2008)"),
}


#: Hinton & Salakhutdinov 2006: the 784-1000-500-250-30 MNIST autoencoder (mnistdeepauto.m)
DEEP_AUTOENCODER = Recipe(
    name="paper",
    summary="Hinton & Salakhutdinov 2006: RBMs pretrained 10 epochs each (rbm.m), unrolled, fine-tuned on "
            "cross-entropy for 200 epochs (conjugate gradient in the paper)",
    hyperparameters={"widths": [1000, 500, 250], "code_size": 30, "init": "rbm", "pretrain_epochs": 10,
                     "loss": "crossentropy", "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 1000,
                     "epochs": 200, "patience": 0},
    dataset="mnist",
    figure=Figure("test_squared_error_per_example", 3.00, "Hinton & Salakhutdinov 2006, Fig. 2B: average squared "
                  "error per test image of the 30-dimensional autoencoder (PCA: 13.87)", dataset="mnist"),
    budgets={"quick": {"pretrain_epochs": 1, "epochs": 2, "limit": 10000}, "paper": {}},
    notes="Keras has no conjugate-gradient optimizer: the fine-tuning minimises the same cross-entropy with Adam on "
          "batches of 1,000 (the paper ran 3 line searches of minimize.m per batch of 1,000). The top RBM has linear "
          "hidden units and learns 100x slower, as rbm.m's rbmhidlinear.m does (0.001 vs 0.1). 58,000 training "
          "images, 2,000 for validation.",
    validation=2000,
    reference="Hinton & Salakhutdinov 2006")


#: trained here with the defaults at a smaller plan (784-128-64-16), shipped in the package
MNIST = shipped("mnist", "autoencoder_mnist", "1d534f674e4f75867c0d7ed0e84dab5a3769ca563d2521ce95fd8c3d40a4d41b",
                Figure("test_mse", 0.01750277169048786, "measured here: zoo train autoencoder -d mnist --set units=128 "
                       "--set depth=2 --set code_size=16 (seed 0, 20 epochs), MNIST's 10,000 test images",
                       dataset="mnist"),
                "a 784-128-64-16 autoencoder of MNIST digits (sigmoid units, a 16-number code): raw 0-255 pixels in",
                hyperparameters={"units": 128, "depth": 2, "code_size": 16})


def _spec(name: str, overrides: dict, summary: str) -> ModelSpec:
    return ModelSpec(name=name, family="autoencoder", summary=summary, tasks=("reconstruction",), build=build,
                     defaults={**DEFAULTS, **overrides},
                     search_space={**SEARCH_SPACE, "init": Choice(*INITS), **PRETRAIN_SEARCH_SPACE},
                     input_ranks=None, capabilities=frozenset({"pretraining", "unsupervised"}),
                     default_dataset="digits", pretrain=pretrain,
                     reference="Hinton & Salakhutdinov 2006; Bengio et al. 2007; Vincent et al. 2008",
                     recipes={"paper": DEEP_AUTOENCODER} if name == "autoencoder-rbm" else {},
                     presets={"mnist": MNIST} if name == "autoencoder" else {})


autoencoder = _spec("autoencoder", *VARIANTS["autoencoder"])
autoencoder_rbm = _spec("autoencoder-rbm", *VARIANTS["autoencoder-rbm"])
autoencoder_stacked = _spec("autoencoder-stacked", *VARIANTS["autoencoder-stacked"])
denoising_autoencoder = _spec("denoising-autoencoder", *VARIANTS["denoising-autoencoder"])

autoencoder_classifier = ModelSpec(
    name="autoencoder-classifier",
    family="autoencoder-classifier",
    summary="Classifier on the encoder of a pretrained deep autoencoder (pretrain_epochs=0: random start)",
    tasks=("classification",),
    build=build_classifier,
    defaults={**DEFAULTS, "init": "rbm", "freeze_encoder": False},
    search_space={**SEARCH_SPACE, "init": Choice(*INITS), **PRETRAIN_SEARCH_SPACE},
    input_ranks=None,
    capabilities=frozenset({"pretraining"}),
    default_dataset="digits",
    pretrain=pretrain_classifier,
    reference="Hinton & Salakhutdinov 2006",
)

register("autoencoder", outputs)
register("autoencoder-classifier", classifier_outputs)
