"""Multilayer perceptrons: from the perceptron (depth 0) to deep MLPs.

Depth 0 is a linear model on the inputs: logistic regression for binary
classification, softmax regression for several classes, linear regression for
regression (Rosenblatt 1958's perceptron with a differentiable output). It
cannot learn XOR (Minsky & Papert 1969); one hidden layer can.
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.plugins.shipped import shipped
from zoo.spec import Boolean, Choice, DataSpec, Figure, Float, Int, ModelSpec, PerLayer, Recipe

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


#: Rumelhart, Hinton & Williams 1986: back-propagation learns XOR with one hidden layer of two units
BACKPROP_XOR = Recipe(
    name="paper",
    summary="Rumelhart, Hinton & Williams 1986: XOR with two logistic hidden units, gradient descent with momentum 0.9",
    hyperparameters={"depth": 1, "units": 2, "activation": "sigmoid", "optimizer": "momentum", "learning_rate": 0.5,
                     "epochs": 300, "patience": 0, "batch_size": 32},
    dataset="xor",
    figure=Figure("xor_pattern_accuracy", 1.0, "Rumelhart, Hinton & Williams 1986: a network with two hidden units "
                  "learns XOR's four patterns", dataset="xor"),
    budgets={"quick": {"epochs": 100}, "paper": {}},
    notes="Trained on the zoo's noisy XOR cloud (800 points around the four patterns, noise 0.15) and judged on "
          "the four patterns themselves; cross-entropy on a sigmoid output instead of the squared error; batches of "
          "32 instead of one update per sweep through the patterns.",
    reference="Rumelhart, Hinton & Williams 1986")

#: Goodfellow, Shlens & Szegedy 2015, section 6: FGSM adversarial training of a maxout network on MNIST
FGSM_MAXOUT = Recipe(
    name="goodfellow2015",
    summary="Goodfellow et al. 2015: a maxout network trained on FGSM examples (eps 0.25, alpha 0.5) on MNIST",
    hyperparameters={"depth": 2, "units": 1600, "activation": "maxout", "maxout_pieces": 2, "dropout": 0.2,
                     "optimizer": "momentum", "learning_rate": 0.01, "batch_size": 100, "epochs": 20, "patience": 0},
    adversarial={"attack": "fgsm", "eps": 0.25, "adv_weight": 0.5},
    dataset="mnist",
    figure=Figure("fgsm_eps0.25_error", 17.9, "Goodfellow et al. 2015, section 6: error on FGSM examples (eps 0.25) "
                  "of the adversarially trained maxout network", dataset="mnist",
                  attack={"attack": "fgsm", "eps": 0.25}),
    budgets={"quick": {"epochs": 1, "limit": 5000}, "paper": {}},
    notes="Two maxout layers of 1600 units (the paper's enlarged network) with 2 pieces each and dropout 0.2; SGD "
          "with momentum 0.9 for a fixed number of epochs instead of the paper's early stopping on the adversarial "
          "validation error; the FGSM figure is measured on the whole test set.",
    reference="Goodfellow, Shlens & Szegedy 2015")

#: Minsky & Papert 1969: a single layer cannot compute XOR
PERCEPTRON_XOR = Recipe(
    name="paper",
    summary="Rosenblatt's perceptron criterion (the hinge on raw scores) with SGD, on XOR: Minsky & Papert's limit",
    hyperparameters={"loss": "hinge", "optimizer": "sgd", "learning_rate": 0.1, "epochs": 50, "patience": 0},
    dataset="xor",
    figure=Figure("xor_pattern_accuracy", 0.75, "Minsky & Papert 1969: no single-layer perceptron computes XOR; a "
                  "line separates at most 3 of its 4 patterns", dataset="xor", limit=True),
    budgets={"quick": {"epochs": 5}, "paper": {}},
    notes="Rosenblatt's error-correction rule is the hinge on the raw score with margin 1 (an SVM-style perceptron), "
          "minimised by SGD on the zoo's noisy XOR cloud and judged on XOR's four patterns.",
    reference="Rosenblatt 1958; Minsky & Papert 1969")


#: trained here with the defaults (zoo train mlp -d digits), shipped in the package
DIGITS = shipped("digits", "mlp_digits", "f6c45e898721c5adcbbdb3645a00dff53ffef0779569f63282a394497fbb82fd",
                 Figure("test_accuracy", 0.9629629850387573, "measured here: zoo train mlp -d digits (defaults, seed 0, "
                        "20 epochs), the default 70/15/15 split's 270 test images", dataset="digits"),
                 "an MLP (2 x 64 ReLU) for scikit-learn's 8x8 digits: raw 0-16 pixels in")

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
    recipes={"paper": BACKPROP_XOR, "goodfellow2015": FGSM_MAXOUT},
    presets={"digits": DIGITS},
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
    recipes={"paper": PERCEPTRON_XOR},
)
