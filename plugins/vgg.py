"""VGG (Simonyan & Zisserman 2014, "Very deep convolutional networks for
large-scale image recognition"): configurations A, B, D and E of Table 1
(vgg11, vgg13, vgg16, vgg19).

Stacks of 3x3 convolutions (stride 1, 'same' padding, ReLU) in five blocks, each
closed by a 2x2 max pool, then the head. The ImageNet head is the paper's:
FC-4096, FC-4096 (dropout 0.5 after each), FC-classes, softmax; on 224x224x3 with
1000 classes the parameter counts are the published ones (vgg16 138,357,544 as in
keras.applications.VGG16). The compact head (FC-512, FC-512 scaled by the width
multiplier) is for small images (MNIST, CIFAR): after five pools a 32x32 input is
1x1x512, so the family trains here. Batch normalisation after each convolution
is optional (not in the paper; Ioffe & Szegedy 2015).
"""

from __future__ import annotations

from dataclasses import replace

from zoo.errors import ZooError
from zoo.plugins.vision_common import INPUT_DEFAULTS, imagenet_preset, input_block, keras_figure, scaled
from zoo.spec import Boolean, Choice, DataSpec, Figure, Float, ModelSpec, Recipe

#: Table 1 of the paper: filters per convolution, "M" a max pool
CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
#: weight layers -> configuration
DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}
HEADS = ("auto", "imagenet", "compact")


def build(hp, data_spec: DataSpec):
    """input block -> five blocks of 3x3 convolutions and a max pool -> head."""
    import keras

    from zoo.layers import output_head, regularizer

    depth = int(hp["depth"])
    if depth not in DEPTHS:
        raise ZooError(f"VGG depth must be one of {sorted(DEPTHS)} (configurations A, B, D, E), got {depth}")
    if hp["head"] not in HEADS:
        raise ZooError(f"VGG head must be one of {', '.join(HEADS)}, got {hp['head']!r}")
    width, reg = float(hp["width"]), regularizer(0.0, float(hp["l2"]))
    inputs, x = input_block(hp, data_spec, min_size=32)
    size = int(min(x.shape[1], x.shape[2]))
    block, conv = 1, 0
    for item in CONFIGS[DEPTHS[depth]]:
        if item == "M":
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block, conv = block + 1, 0
            continue
        conv += 1
        name = f"block{block}_conv{conv}"
        x = keras.layers.Conv2D(scaled(item, width), 3, padding="same", kernel_initializer=hp["initializer"],
                                kernel_regularizer=reg, name=name)(x)
        if hp["batch_norm"]:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    head = hp["head"] if hp["head"] != "auto" else ("imagenet" if size >= 224 else "compact")
    units = int(hp["fc_units"]) or (4096 if head == "imagenet" else scaled(512, width))
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=hp["initializer"],
                               kernel_regularizer=reg, name=f"fc{i}")(x)
        if hp["dropout"]:
            x = keras.layers.Dropout(float(hp["dropout"]), name=f"fc{i}_dropout")(x)
    outputs = output_head(x, data_spec, kernel_regularizer=reg)
    return keras.Model(inputs, outputs, name=f"vgg{depth}")


COMMON = {
    **INPUT_DEFAULTS,
    "width": 1.0,  # multiplies every convolution's filters (and the compact head)
    "batch_norm": False,
    "head": "auto",  # imagenet (FC-4096 x 2) for inputs of 224 and more, else compact (FC-512 x 2)
    "fc_units": 0,  # 0: the head's own (4096 or 512 x width)
    "dropout": 0.5,
    "l2": 2.5e-4,  # Keras's L2 penalty for the paper's weight decay 5e-4 (gradient 2 * l2 * w)
    # The paper initialised deep configurations from net A, later with Glorot & Bengio's
    # scheme; from scratch and without batch norm that stalls at chance here (measured on
    # digits), as He et al. 2015 found for VGG-19, so He initialisation is the default.
    "initializer": "he_normal",
    # the paper: mini-batch gradient descent with momentum 0.9, learning rate 1e-2
    "optimizer": "momentum",
    "learning_rate": 1e-2,
    "batch_size": 64,
    "epochs": 20,
}

#: Simonyan & Zisserman's own training (zoo.recipes)
PAPER = Recipe(
    name="paper",
    summary="Simonyan & Zisserman 2015, section 3.1: SGD 0.01 with momentum 0.9, weight decay 5e-4, dropout 0.5, "
            "batches of 256, 74 epochs, 224 crops and flips",
    hyperparameters={"optimizer": "momentum", "learning_rate": 0.01, "l2": 2.5e-4, "dropout": 0.5,
                     "batch_size": 256, "epochs": 74, "patience": 0, "input_size": 224, "channels": 3,
                     "head": "imagenet", "initializer": "glorot_uniform"},
    augment=("zoom=0.25", "flip"),
    dataset="imagenet2012",
    figure=Figure("test_top5_error", 7.5, "Simonyan & Zisserman 2015, Table 4: configurations D and E, "
                  "multi-scale evaluation, ILSVRC-2012 validation", dataset="imagenet2012"),
    budgets={"quick": {"epochs": 1, "limit": 10000}, "paper": {}},
    notes="The rate divided by 10 when validation accuracy stops improving (three times): add the zoo's "
          "reduce-lr-on-plateau callback. Glorot initialisation from scratch, as the paper's note says worked "
          "without pretraining net A (configuration A first, then deeper nets initialised from it, is not done). "
          "Scale jittering (S in [256, 512]) and the RGB colour shift are replaced by Keras's RandomZoom and "
          "RandomFlip; no dense or multi-crop evaluation. ImageNet is not on this machine.",
    reference="Simonyan & Zisserman 2015")

#: name -> (configuration depth, batch normalisation)
VARIANTS = {
    "vgg11": (11, False),
    "vgg13": (13, False),
    "vgg16": (16, False),
    "vgg19": (19, False),
    "vgg11_bn": (11, True),
    "vgg16_bn": (16, True),
}

SEARCH_SPACE = {
    "width": Choice(0.125, 0.25, 0.5, 1.0),
    "depth": Choice(11, 13, 16, 19),
    "batch_norm": Boolean(),
    "dropout": Float(0.0, 0.5, step=0.1),
    "learning_rate": Float(1e-4, 1e-1, sampling="log"),
}


#: keras.applications' ImageNet files: name -> (path under KERAS_APPLICATIONS, MD5), keras/src/applications/vgg*.py
IMAGENET_WEIGHTS = {
    "vgg16": ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
    "vgg19": ("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"),
}
WEIGHTS_LICENSE = "CC BY 4.0 (the Visual Geometry Group's released weights, ported by keras.applications)"


def presets(name: str) -> dict:
    if name not in IMAGENET_WEIGHTS:
        return {}
    return {"imagenet": imagenet_preset(*IMAGENET_WEIGHTS[name], license=WEIGHTS_LICENSE, figure=keras_figure(name), head="imagenet",
                                        fc_units=0, width=1.0)}


def _spec(name: str, depth: int, batch_norm: bool) -> ModelSpec:
    config = DEPTHS[depth]
    return ModelSpec(
        name=name,
        family="vgg",
        summary=f"VGG configuration {config} ({depth} weight layers)" + (" with batch normalisation" if batch_norm else ""),
        tasks=("classification",),
        build=build,
        defaults={**COMMON, "depth": depth, "batch_norm": batch_norm},
        search_space=SEARCH_SPACE,
        input_ranks=(2, 3),
        capabilities=frozenset({"image", "transfer"}),
        default_dataset="digits",
        reference="Simonyan & Zisserman 2014, Very deep convolutional networks for large-scale image recognition",
        presets=presets(name),
        # the figure is the paper's for D and E; the other configurations train the same way
        recipes={"paper": PAPER if name in ("vgg16", "vgg19") else replace(PAPER, figure=None)},
    )


SPECS = {name: _spec(name, depth, bn) for name, (depth, bn) in VARIANTS.items()}
vgg11, vgg13, vgg16, vgg19 = (SPECS[n] for n in ("vgg11", "vgg13", "vgg16", "vgg19"))
vgg11_bn, vgg16_bn = SPECS["vgg11_bn"], SPECS["vgg16_bn"]
