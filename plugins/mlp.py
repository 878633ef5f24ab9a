"""Multilayer perceptrons: from the perceptron (depth 0) to deep MLPs.

Depth 0 is a linear model on the inputs: logistic regression for binary
classification, softmax regression for several classes, linear regression for
regression (Rosenblatt 1958's perceptron with a differentiable output). It
cannot learn XOR (Minsky & Papert 1969); one hidden layer can.
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.spec import Boolean, Choice, DataSpec, Float, Int, ModelSpec, PerLayer

ACTIVATION_CHOICES = ("relu", "tanh", "sigmoid", "leaky_relu", "prelu", "elu", "softsign", "swish", "mish", "maxout")

DEFAULTS = {
    "depth": 2,
    "units": 64,
    "widths": [],  # one width per hidden layer; overrides depth and units when set
    "activation": "relu",
    "maxout_pieces": 2,
    "dropout": 0.0,
    "batch_norm": False,
    "l1": 0.0,
    "l2": 0.0,
    "initializer": "glorot_uniform",  # or he_normal, he_uniform, glorot_normal, ...
}

SEARCH_SPACE = {
    "depth": Int(1, 4),
    "widths": PerLayer(Int(16, 256, step=16)),  # one width per hidden layer, as deep as the trial's depth
    "activation": Choice("relu", "tanh", "elu", "swish"),
    "dropout": Float(0.0, 0.5, step=0.1),
    "batch_norm": Boolean(),
    "learning_rate": Float(1e-4, 1e-1, sampling="log"),
}


def hidden_widths(hp) -> list[int]:
    """The width of each hidden layer: `widths` when given, else depth x units."""
    widths = [int(w) for w in hp["widths"]] if hp["widths"] else [int(hp["units"])] * int(hp["depth"])
    if any(w < 1 for w in widths) or int(hp["depth"]) < 0:
        raise ZooError(f"MLP widths must be positive and depth >= 0, got widths={widths}, depth={hp['depth']}")
    return widths


def build(hp, data_spec: DataSpec):
    """Flatten -> [Dense -> (BatchNorm) -> activation -> (Dropout)] x depth -> output head."""
    import keras

    from zoo.layers import activation_layer, dense_block, output_head, regularizer

    reg = regularizer(float(hp["l1"]), float(hp["l2"]))
    inputs = keras.Input(shape=data_spec.input_shape, name="features")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(data_spec.input_shape) > 1 else inputs
    for i, width in enumerate(hidden_widths(hp), start=1):
        if hp["batch_norm"] and hp["activation"] != "maxout":
            x = keras.layers.Dense(width, kernel_initializer=hp["initializer"], kernel_regularizer=reg,
                                   use_bias=False, name=f"dense{i}")(x)
            x = keras.layers.BatchNormalization(name=f"dense{i}_bn")(x)
            x = activation_layer(hp["activation"], f"dense{i}_{hp['activation']}")(x)
        else:
            x = dense_block(x, width, hp["activation"], f"dense{i}", kernel_initializer=hp["initializer"],
                            kernel_regularizer=reg, maxout_pieces=int(hp["maxout_pieces"]))
        if hp["dropout"]:
            x = keras.layers.Dropout(float(hp["dropout"]), name=f"dense{i}_dropout")(x)
    outputs = output_head(x, data_spec, kernel_initializer=hp["initializer"], kernel_regularizer=reg)
    return keras.Model(inputs, outputs, name="mlp")


mlp = ModelSpec(
    name="mlp",
    family="mlp",
    summary="Multilayer perceptron for classification or regression, any depth and width",
    tasks=("classification", "regression"),
    build=build,
    defaults=DEFAULTS,
    search_space=SEARCH_SPACE,
    input_ranks=None,
    default_dataset="digits",
    reference="Rumelhart, Hinton & Williams 1986",
    keras_modules=("zoo.layers",),  # Maxout, for reloading saved models
)

perceptron = ModelSpec(
    name="perceptron",
    family="mlp",
    summary="Single-layer perceptron: linear/logistic/softmax regression (depth 0 MLP)",
    tasks=("classification", "regression"),
    build=build,
    defaults={**DEFAULTS, "depth": 0},
    search_space={"learning_rate": Float(1e-4, 1e-1, sampling="log"), "l2": Float(0.0, 1e-2)},
    default_dataset="iris",
    reference="Rosenblatt 1958",
    keras_modules=("zoo.layers",),
)
