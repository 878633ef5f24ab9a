"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied
to document recognition"), as published and in its modern form.

The original layer plan on a 32x32 input: C1 6@5x5 -> S2 subsampling -> C3 16@5x5
with the paper's connection table (Table I: each C3 map sees 3, 4 or 6 of the S2
maps, 1,516 parameters instead of 2,416) -> S4 subsampling -> C5 120@5x5 -> F6 84
-> output; squashing A*tanh(S*a) with A=1.7159, S=2/3; subsampling layers add
four inputs, multiply by a trainable coefficient and add a trainable bias (an
average pool followed by a 1x1 depthwise convolution). 60,850 parameters for 10
classes. The one deliberate departure: the Euclidean RBF output units are
replaced by a softmax layer, trained with cross-entropy.

The modern variant uses ReLU, max pooling, a fully connected C3 and dropout.
28x28 images (MNIST) are zero-padded to 32x32 as in the paper's input plan;
other sizes are resized (see plugins/vision_common.py).

Only Keras's own layers are used (the connection table is a fixed channel
selection and a convolution per C3 map; see table_conv), so saved models reload
without custom objects, and this module imports Keras only inside functions.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import ZooError
from zoo.plugins.vision_common import INPUT_DEFAULTS, input_block, scaled
from zoo.spec import Choice, DataSpec, Float, ModelSpec

#: LeCun et al. 1998, Table I: the S2 maps each C3 map takes its input from
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


#: LeCun's squashing function f(a) = A tanh(S a): f(1) = 1 and f(-1) = -1
TANH_AMPLITUDE, TANH_SLOPE = 1.7159, 2.0 / 3.0


def table_conv(x, table, kernel_size: int, name: str):
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
        outputs.append(keras.layers.Conv2D(1, kernel_size, name=f"{name}_map{j}")(picked))
    return keras.layers.Concatenate(name=name)(outputs)


ACTIVATIONS = ("scaled_tanh", "tanh", "relu", "elu", "sigmoid", "swish")
POOLINGS = ("subsampling", "average", "max")


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
    inputs, x = input_block(hp, data_spec, min_size=32)
    if x.shape[1] < 32 or x.shape[2] < 32:
        raise ZooError("LeNet-5 needs inputs of at least 32x32 after the input block; set input_size=32")
    c1, c3, c5, f6 = (scaled(n, width) for n in (6, 16, 120, 84))
    x = keras.layers.Conv2D(c1, 5, name="c1")(x)
    x = _activation(act, f"c1_{act}")(x)
    x = _pool(x, hp["pooling"], "s2", act)
    if hp["c3_table"] and (c1, c3) == (6, 16):
        x = table_conv(x, C3_TABLE, 5, name="c3")
    else:
        x = keras.layers.Conv2D(c3, 5, name="c3")(x)
    x = _activation(act, f"c3_{act}")(x)
    x = _pool(x, hp["pooling"], "s4", act)
    # C5 is a 5x5 convolution: on a 32x32 input its maps are 1x1, a fully connected layer
    x = keras.layers.Conv2D(c5, 5, name="c5")(x)
    x = _activation(act, f"c5_{act}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if hp["dropout"]:
        x = keras.layers.Dropout(float(hp["dropout"]), name="c5_dropout")(x)
    x = keras.layers.Dense(f6, name="f6")(x)
    x = _activation(act, f"f6_{act}")(x)
    if hp["dropout"]:
        x = keras.layers.Dropout(float(hp["dropout"]), name="f6_dropout")(x)
    outputs = output_head(x, data_spec)
    return keras.Model(inputs, outputs, name="lenet5")


COMMON = {**INPUT_DEFAULTS, "input_size": 32, "width": 1.0, "dropout": 0.0}

#: the variants, as data over the one builder
VARIANTS = {
    "lenet5": {
        "summary": "LeNet-5 as published: tanh squashing, trainable subsampling, C3 connection table",
        "defaults": {"activation": "scaled_tanh", "pooling": "subsampling", "c3_table": True},
    },
    "lenet5_modern": {
        "summary": "LeNet-5 with ReLU, max pooling, a full C3 and dropout",
        "defaults": {"activation": "relu", "pooling": "max", "c3_table": False, "dropout": 0.25},
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
    )


SPECS = {name: _spec(name, v) for name, v in VARIANTS.items()}
lenet5 = SPECS["lenet5"]
lenet5_modern = SPECS["lenet5_modern"]
