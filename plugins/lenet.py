"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied
to document recognition"), as published and in its modern form.

The original layer plan on a 32x32 input: C1 6@5x5 -> S2 subsampling -> C3 16@5x5
with the paper's connection table (Table I: each C3 map sees 3, 4 or 6 of the S2
maps, 1,516 parameters instead of 2,416) -> S4 subsampling -> C5 120@5x5 -> F6 84
-> output; squashing A*tanh(S*a) with A=1.7159, S=2/3; subsampling layers add
four inputs, multiply by a trainable coefficient and add a trainable bias (an
average pool followed by a 1x1 depthwise convolution). 60,850 parameters for 10
classes with the default softmax output (trained with cross-entropy);
output=rbf gives the paper's Euclidean RBF units on fixed codes with its MAP
criterion (zoo.layers.EuclideanRBF), as the paper recipe does.

The modern variant uses ReLU, max pooling, a fully connected C3 and dropout.
28x28 images (MNIST) are zero-padded to 32x32 as in the paper's input plan;
other sizes are resized (see plugins/vision_common.py).

Only Keras's own layers are used for the body (the connection table is a fixed
channel selection and a convolution per C3 map; see table_conv); the RBF outputs
and the paper's +-2.4/fan-in initialiser are zoo's registered Keras objects. This
module imports Keras only inside functions.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import ZooError
from zoo.plugins.shipped import shipped
from zoo.plugins.vision_common import INPUT_DEFAULTS, input_block, scaled
from zoo.spec import Choice, DataSpec, Figure, Float, ModelSpec, Recipe

#: LeCun et al. 1998, Table I: the S2 maps each C3 map takes its input from
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


#: LeCun's squashing function f(a) = A tanh(S a): f(1) = 1 and f(-1) = -1
TANH_AMPLITUDE, TANH_SLOPE = 1.7159, 2.0 / 3.0


def table_conv(x, table, kernel_size: int, name: str, initializer="glorot_uniform"):
    """A 'valid' convolution where output map j sees only the input maps `table[j]`
    (LeNet-5's C3): a weight per connection, none for the missing ones.

    Built from Keras layers only, so a saved model reloads without custom objects:
    for each output map a fixed (non-trainable) 1x1 convolution picks its input
    maps and a one-filter convolution convolves them (a map that sees every input
    needs no picking). Grouped convolutions would be fewer layers but are ~8x
    slower on CPU in TensorFlow.
    """
    import keras

    channels = int(x.shape[-1])
    outputs = []
    for j, inputs in enumerate(table):
        picked = x
        if sorted(inputs) != list(range(channels)):
            select = np.zeros((1, 1, channels, len(inputs)), dtype="float32")
            for position, i in enumerate(inputs):
                select[0, 0, i, position] = 1.0
            picked = keras.layers.Conv2D(len(inputs), 1, use_bias=False, trainable=False, name=f"{name}_select{j}",
                                         kernel_initializer=keras.initializers.Constant(select.tolist()))(x)
        outputs.append(keras.layers.Conv2D(1, kernel_size, kernel_initializer=initializer, name=f"{name}_map{j}")(picked))
    return keras.layers.Concatenate(name=name)(outputs)


#: the output layer: a softmax, or the paper's Euclidean RBF units on fixed codes (zoo.layers.EuclideanRBF)
OUTPUTS = ("softmax", "rbf")

#: the RBF units' codes for ten classes: each digit drawn as a 7x12 bitmap, +1 ink and -1 background
#: (the paper's Fig. 3 shows such stylised digits, its exact bitmaps are not published; these are
#: DejaVu Sans glyphs stretched to the frame). Other class counts get random +-1 codes (seed 0).
DIGIT_CODES = (
    "..###.. #####.. .####.. ######. ....##. ######. ..####. ####### .#####. .####..",
    ".##.##. #####.. ######. ######. ...###. ######. .#####. ####### ###.### ###.##.",
    "##...## ...##.. .....## .....## ...###. ##..... .#..... .....#. ##...## ##...##",
    "##...## ...##.. .....## .....## ..#.##. ##..... ##..... ....##. ##...## ##...##",
    "##...## ...##.. .....## ....##. .##.##. #####.. #####.. ....##. .#...#. ##...##",
    "##...## ...##.. ....##. ..####. .#..##. ######. ######. ....#.. .#####. ##...##",
    "##...## ...##.. ....##. ....##. ##..##. .....## ##...## ...##.. .##.##. .######",
    "##...## ...##.. ...##.. .....## ##..##. .....## ##...## ...##.. ##...## ..#####",
    "##...## ...##.. ..##... .....## ####### .....## ##...## ...#... ##...## .....##",
    "##...## ...##.. .##.... .....## ....##. .....## ##...## ..##... ##...## .....#.",
    ".##.##. .###### ####### ##.#### ....##. ######. .##.### ..##... ###.### .#####.",
    "..###.. ####### ####### #####.. ....##. #####.. ..####. ..#.... .#####. .####..",
)
#: the MAP criterion's j (LeCun et al. 1998, eq. 9: the penalty of a "rubbish" class)
RBF_J = 10.0


def rbf_codes(classes: int, units: int = 84) -> np.ndarray:
    """(classes, units) codes of +-1: the digit bitmaps for 10 classes and 84 units, else random."""
    if classes == 10 and units == 84:
        rows = [row.split() for row in DIGIT_CODES]
        return np.array([[1.0 if ch == "#" else -1.0 for r in rows for ch in r[k]] for k in range(10)], "float32")
    return np.where(np.random.default_rng(0).random((classes, units)) < 0.5, -1.0, 1.0).astype("float32")


ACTIVATIONS = ("scaled_tanh", "tanh", "relu", "elu", "sigmoid", "swish")
POOLINGS = ("subsampling", "average", "max")
#: weight initialisations: Keras's glorot_uniform, or the paper's uniform +-2.4 / fan-in
INITS = ("glorot_uniform", "lecun98")


def initializer(name: str):
    """A Keras initializer for `init`: lecun98 is zoo.layers.FanInUniform(2.4)."""
    if name not in INITS:
        raise ZooError(f"LeNet init must be one of {', '.join(INITS)}, got {name!r}")
    if name == "glorot_uniform":
        return name
    from zoo.layers import FanInUniform

    return FanInUniform(2.4)


def _activation(name: str, layer_name: str):
    """The named activation as a callable on tensors; scaled_tanh is A tanh(S a)."""
    import keras

    from zoo.layers import activation_layer

    if name != "scaled_tanh":
        return activation_layer(name, layer_name)

    def scaled_tanh(x):
        x = keras.layers.Rescaling(TANH_SLOPE, name=f"{layer_name}_slope")(x)
        x = keras.layers.Activation("tanh", name=f"{layer_name}_tanh")(x)
        return keras.layers.Rescaling(TANH_AMPLITUDE, name=layer_name)(x)

    return scaled_tanh


def _pool(x, kind: str, name: str, activation: str):
    import keras

    if kind not in POOLINGS:
        raise ZooError(f"unknown pooling {kind!r}; use one of {', '.join(POOLINGS)}")
    if kind == "max":
        return keras.layers.MaxPooling2D(2, name=name)(x)
    x = keras.layers.AveragePooling2D(2, name=name if kind == "average" else f"{name}_pool")(x)
    if kind == "subsampling":  # trainable coefficient and bias per map, then the squashing function
        x = keras.layers.DepthwiseConv2D(1, name=name)(x)
        x = _activation(activation, f"{name}_{activation}")(x)
    return x


def build(hp, data_spec: DataSpec):
    """input block (pad/resize to 32x32) -> C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output."""
    import keras

    from zoo.layers import output_head

    act, width = hp["activation"], float(hp["width"])
    if act not in ACTIVATIONS:
        raise ZooError(f"LeNet activation must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
    init = initializer(hp["init"])
    inputs, x = input_block(hp, data_spec, min_size=32)
    if x.shape[1] < 32 or x.shape[2] < 32:
        raise ZooError("LeNet-5 needs inputs of at least 32x32 after the input block; set input_size=32")
    c1, c3, c5, f6 = (scaled(n, width) for n in (6, 16, 120, 84))
    x = keras.layers.Conv2D(c1, 5, kernel_initializer=init, name="c1")(x)
    x = _activation(act, f"c1_{act}")(x)
    x = _pool(x, hp["pooling"], "s2", act)
    if hp["c3_table"] and (c1, c3) == (6, 16):
        x = table_conv(x, C3_TABLE, 5, name="c3", initializer=init)
    else:
        x = keras.layers.Conv2D(c3, 5, kernel_initializer=init, name="c3")(x)
    x = _activation(act, f"c3_{act}")(x)
    x = _pool(x, hp["pooling"], "s4", act)
    # C5 is a 5x5 convolution: on a 32x32 input its maps are 1x1, a fully connected layer
    x = keras.layers.Conv2D(c5, 5, kernel_initializer=init, name="c5")(x)
    x = _activation(act, f"c5_{act}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if hp["dropout"]:
        x = keras.layers.Dropout(float(hp["dropout"]), name="c5_dropout")(x)
    x = keras.layers.Dense(f6, kernel_initializer=init, name="f6")(x)
    x = _activation(act, f"f6_{act}")(x)
    if hp["dropout"]:
        x = keras.layers.Dropout(float(hp["dropout"]), name="f6_dropout")(x)
    if hp["output"] not in OUTPUTS:
        raise ZooError(f"LeNet output must be one of {', '.join(OUTPUTS)}, got {hp['output']!r}")
    if hp["output"] == "rbf":
        if data_spec.task != "classification" or (data_spec.num_classes or 0) < 3:
            raise ZooError("output=rbf (the paper's Euclidean RBF units) needs a classification dataset of 3 or "
                           "more classes")
        from zoo.layers import EuclideanRBF

        outputs = EuclideanRBF(rbf_codes(int(data_spec.num_classes), f6), j=RBF_J, name="output")(x)
    else:
        outputs = output_head(x, data_spec, kernel_initializer=init)
    return keras.Model(inputs, outputs, name="lenet5")


COMMON = {**INPUT_DEFAULTS, "input_size": 32, "width": 1.0, "dropout": 0.0, "init": "glorot_uniform",
          "output": "softmax", "sdlm_curvature": "fisher"}

#: LeCun et al. 1998's own training, beside today's defaults (zoo.recipes)
PAPER = Recipe(
    name="paper",
    summary="LeCun et al. 1998's training: per-example SDLM on Gauss-Newton curvature, its rate steps, Euclidean RBF "
            "outputs and the MAP criterion, uniform +-2.4/fan-in, inputs -0.1..1.175",
    hyperparameters={"optimizer": "sdlm", "sdlm_curvature": "gauss-newton", "learning_rate": 1e-4,
                     "lr_schedule": "step", "lr_boundaries": [2, 5, 8, 12], "lr_factors": [1.0, 0.4, 0.2, 0.1, 0.02],
                     "output": "rbf", "init": "lecun98", "preprocess": "lecun", "epochs": 20, "batch_size": 32,
                     "patience": 0},
    dataset="mnist",
    figure=Figure("test_error", 0.95, "LeCun et al. 1998, section III.C: LeNet-5, 20 passes, no distortions",
                  dataset="mnist"),
    budgets={"quick": {"epochs": 1, "limit": 6000}, "paper": {}},
    notes="Stochastic diagonal Levenberg-Marquardt as in Appendix C (zoo.sdlm): an update after every example (a "
          "batch of 32 is 32 updates in one graph loop), each weight's step eta / (mu + h) with mu 0.02 and h the "
          "Gauss-Newton diagonal of the criterion estimated on 500 training images before each pass (and every 256 "
          "images in the first pass, where h grows from nearly 0 and one estimate lets the steps diverge). The "
          "rates follow the paper's steps (x1 for 2 passes, x0.4 for 3, x0.2 for 3, x0.1 for 4, then x0.02) from "
          "1e-4 instead of 5e-4: from 5e-4 training diverged here. Outputs: the Euclidean RBF units on fixed 7x12 "
          "digit bitmaps (the paper's exact bitmaps are not published) with the MAP criterion, j = 10. Inputs: "
          "background -0.1, ink 1.175; weights uniform in +-2.4 / fan-in (biases and the subsampling coefficients "
          "start as Keras's). 58,000 of MNIST's 60,000 training images train it, 2,000 draw its validation curve "
          "(the paper trains on all 60,000); no early stopping.",
    validation=2000,
    reference="LeCun, Bottou, Bengio & Haffner 1998",
)


#: Madry et al. 2018's MNIST adversarial training, on the closest LeNet
MADRY = Recipe(
    name="madry2018",
    summary="Madry et al. 2018: training on PGD examples only (eps 0.3, 40 steps of 0.01, random start), Adam 1e-4, "
            "batches of 50, 100,000 steps",
    hyperparameters={"width": 4.0, "dropout": 0.0, "optimizer": "adam", "learning_rate": 1e-4, "batch_size": 50,
                     "epochs": 86, "patience": 0},
    adversarial={"attack": "pgd", "eps": 0.3, "steps": 40, "step_size": 0.01, "adv_weight": 1.0},
    dataset="mnist",
    figure=Figure("pgd40_eps0.3_accuracy", 0.932, "Madry et al. 2018, Table 1 (MNIST, white-box PGD, 40 steps, one "
                  "restart, eps 0.3)", dataset="mnist",
                  attack={"attack": "pgd", "eps": 0.3, "steps": 40, "step_size": 0.01}),
    budgets={"quick": {"epochs": 1, "limit": 2000}, "paper": {}},
    notes="Madry et al.'s network (conv 32 and 64 filters of 5x5, each with 2x2 max pooling, a 1,024-unit layer) is "
          "replaced by the closest LeNet: lenet5_modern at width 4 (convolutions of 24, 64 and 480 filters, an "
          "336-unit layer, no dropout). 100,000 steps of 50 are 86 epochs of 58,000 images.",
    validation=2000,
    reference="Madry, Makelov, Schmidt, Tsipras & Vladu 2018")

#: trained here with the earlier paper recipe (softmax, batch SDLM), shipped in the package
MNIST = shipped("mnist", "lenet5_mnist", "951cea7029b8707413a5574cf5c89d689e4413008a47872c1820ef744dec4ce9",
                Figure("test_accuracy", 0.9872999787330627, "measured here: zoo train lenet5 -d mnist --recipe paper "
                       "--lr 0.0005 --set output=softmax --set sdlm_curvature=fisher (the recipe before it had the RBF "
                       "outputs and per-example SDLM; seed 0, 20 epochs), MNIST's 10,000 test images", dataset="mnist"),
                "LeNet-5 with a softmax output, trained with the earlier paper recipe (batch SDLM) on MNIST: raw 28x28 "
                "0-255 grey images in",
                hyperparameters={"preprocess": "lecun", "init": "lecun98", "output": "softmax"})

#: the variants, as data over the one builder
VARIANTS = {
    "lenet5": {
        "summary": "LeNet-5 as published: tanh squashing, trainable subsampling, C3 connection table",
        "defaults": {"activation": "scaled_tanh", "pooling": "subsampling", "c3_table": True},
        "recipes": {"paper": PAPER},
        "presets": {"mnist": MNIST},
    },
    "lenet5_modern": {
        "summary": "LeNet-5 with ReLU, max pooling, a full C3 and dropout",
        "defaults": {"activation": "relu", "pooling": "max", "c3_table": False, "dropout": 0.25},
        "recipes": {"madry2018": MADRY},
    },
}

SEARCH_SPACE = {
    "width": Choice(0.5, 1.0, 2.0),
    "dropout": Float(0.0, 0.5, step=0.1),
    "learning_rate": Float(1e-4, 1e-2, sampling="log"),
}


def _spec(name: str, variant: dict) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="lenet",
        summary=variant["summary"],
        tasks=("classification",),
        build=build,
        defaults={**COMMON, **variant["defaults"], "epochs": 20, "batch_size": 32},
        search_space=SEARCH_SPACE,
        input_ranks=(2, 3),
        capabilities=frozenset({"image", "transfer"}),
        default_dataset="digits",
        reference="LeCun, Bottou, Bengio & Haffner 1998, Gradient-based learning applied to document recognition",
        keras_modules=("zoo.layers",),  # FanInUniform, for reloading saved models
        recipes=variant.get("recipes", {}),
        presets=variant.get("presets", {}),
    )


SPECS = {name: _spec(name, v) for name, v in VARIANTS.items()}
lenet5 = SPECS["lenet5"]
lenet5_modern = SPECS["lenet5_modern"]
