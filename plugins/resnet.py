"""ResNet v1 (He, Zhang, Ren & Sun 2015, "Deep residual learning for image
recognition"): the ImageNet networks of Table 1 and the CIFAR-10 networks of
section 4.2.

ImageNet layout (resnet18 ... resnet152): 7x7/2 convolution, 3x3/2 max pool, four
stages of basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) blocks with 64, 128,
256, 512 filters, global average pooling, the classifier. Downsampling is done by
the first block of stages 3-5 with stride 2 on its first convolution, as in the
paper and its Caffe release. Shortcuts use option B (projection when the shape
changes, identity otherwise). At 224x224x3 with 1000 classes the trainable
parameters are the published ones (resnet18 11,689,512, resnet50 25,557,032 as
torchvision counts them); with `conv_bias=True` the model is layer for layer
keras.applications.ResNet50/101/152 (resnet50: 25,636,712 parameters).

CIFAR layout (resnet20 ... resnet110, depth 6n+2): 3x3 convolution with 16
filters, three stages of n basic blocks with 16, 32, 64 filters on 32x32, 16x16,
8x8 maps, global average pooling, the classifier. Shortcuts use option A
(identity; subsampled and zero-padded when the shape changes: no parameters), so
resnet20 has the paper's 0.27M parameters. Option C projects every shortcut.
"""

from __future__ import annotations

from dataclasses import replace

from zoo.errors import ZooError
from zoo.plugins.vision_common import INPUT_DEFAULTS, imagenet_preset, input_block, keras_figure, scaled
from zoo.spec import Choice, DataSpec, Figure, Float, ModelSpec, Recipe

#: ImageNet depth -> (block, blocks per stage), Table 1 of the paper
IMAGENET = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
LAYOUTS = ("imagenet", "cifar")
SHORTCUTS = ("A", "B", "C")


def _bn(name: str):
    """Batch norm whose moving statistics follow 10% per step (torch's default): with
    Keras's 1% a short run on a small dataset evaluates with statistics still
    near their initial values."""
    import keras

    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name=name)


def _conv(filters: int, kernel: int, strides: int, name: str, hp, reg, padding: str = "same"):
    import keras

    return keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=bool(hp["conv_bias"]),
                               kernel_initializer=hp["initializer"], kernel_regularizer=reg, name=name)


def _shortcut(x, out_channels: int, stride: int, option: str, name: str, hp, reg):
    """Identity, zero-padded identity (A) or projection (B: when the shape changes; C: always)."""
    import keras

    in_channels = int(x.shape[-1])
    changes = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes):
        x = _conv(out_channels, 1, stride, f"{name}_0_conv", hp, reg)(x)
        return _bn(f"{name}_0_bn")(x)
    if not changes:
        return x
    if stride != 1:  # keep every stride-th pixel, as the strided convolution of the main path
        x = keras.layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{name}_0_subsample")(x)
    if out_channels > in_channels:  # zero-pad the new channels: no parameters
        h, w = int(x.shape[1]), int(x.shape[2])
        x = keras.layers.Reshape((h, w, in_channels, 1), name=f"{name}_0_split")(x)
        extra = out_channels - in_channels
        x = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{name}_0_pad")(x)
        x = keras.layers.Reshape((h, w, out_channels), name=f"{name}_0_merge")(x)
    elif out_channels < in_channels:
        raise ZooError("shortcut option A cannot reduce channels; use shortcut=B")
    return x


def basic_block(x, filters: int, stride: int, name: str, hp, reg):
    """Two 3x3 convolutions and a shortcut (resnet18/34 and the CIFAR nets)."""
    import keras

    shortcut = _shortcut(x, filters, stride, hp["shortcut"], name, hp, reg)
    x = _conv(filters, 3, stride, f"{name}_1_conv", hp, reg)(x)
    x = _bn(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(filters, 3, 1, f"{name}_2_conv", hp, reg)(x)
    x = _bn(f"{name}_2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters: int, stride: int, name: str, hp, reg):
    """1x1 (stride) -> 3x3 -> 1x1 with 4x the filters, and a shortcut (resnet50+)."""
    import keras

    shortcut = _shortcut(x, 4 * filters, stride, hp["shortcut"], name, hp, reg)
    x = _conv(filters, 1, stride, f"{name}_1_conv", hp, reg)(x)
    x = _bn(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(filters, 3, 1, f"{name}_2_conv", hp, reg)(x)
    x = _bn(f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = _conv(4 * filters, 1, 1, f"{name}_3_conv", hp, reg)(x)
    x = _bn(f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def stages(hp) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(block kind, blocks per stage, base filters per stage) for the layout and depth."""
    depth, layout = int(hp["depth"]), hp["layout"]
    if layout not in LAYOUTS:
        raise ZooError(f"ResNet layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if hp["shortcut"] not in SHORTCUTS:
        raise ZooError(f"ResNet shortcut must be A, B or C, got {hp['shortcut']!r}")
    if layout == "imagenet":
        if depth not in IMAGENET:
            raise ZooError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET)}, got {depth}")
        kind, blocks = IMAGENET[depth]
        return kind, blocks, (64, 128, 256, 512)
    if depth < 8 or (depth - 2) % 6:
        raise ZooError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return "basic", (n, n, n), (16, 32, 64)


def build(hp, data_spec: DataSpec):
    """input block -> stem -> residual stages -> global average pool -> output."""
    import keras

    from zoo.layers import output_head, regularizer

    kind, blocks, filters = stages(hp)
    width, reg = float(hp["width"]), regularizer(0.0, float(hp["l2"]))
    inputs, x = input_block(hp, data_spec, min_size=32)
    if hp["layout"] == "imagenet":
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = _conv(scaled(64, width), 7, 2, "conv1_conv", hp, reg, padding="valid")(x)
        x = _bn("conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    else:
        x = _conv(scaled(16, width), 3, 1, "conv1_conv", hp, reg)(x)
        x = _bn("conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    block = bottleneck_block if kind == "bottleneck" else basic_block
    for s, (count, f) in enumerate(zip(blocks, filters)):
        for b in range(count):
            stride = 2 if s > 0 and b == 0 else 1
            x = block(x, scaled(f, width), stride, f"conv{s + 2}_block{b + 1}", hp, reg)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if hp["dropout"]:
        x = keras.layers.Dropout(float(hp["dropout"]), name="avg_pool_dropout")(x)
    outputs = output_head(x, data_spec, kernel_regularizer=reg)
    return keras.Model(inputs, outputs, name=f"resnet{hp['depth']}")


COMMON = {
    **INPUT_DEFAULTS,
    "width": 1.0,  # multiplies every convolution's filters
    "conv_bias": False,  # the paper's convolutions have no bias (batch norm follows); True: keras.applications
    "dropout": 0.0,  # not in the paper; before the classifier
    "l2": 5e-5,  # Keras's L2 penalty for the paper's weight decay 1e-4 (gradient 2 * l2 * w)
    "initializer": "he_normal",  # the paper's initialisation (He et al. 2015)
    # the paper: SGD, momentum 0.9, learning rate 0.1, mini-batches of 128 (CIFAR) / 256 (ImageNet)
    "optimizer": "momentum",
    "learning_rate": 0.1,
    "batch_size": 128,
    "epochs": 20,
}

#: the paper's test errors (%): CIFAR-10, Table 6; ImageNet top-1, 10-crop testing, Table 3 (ResNet-18: Table 2)
PAPER_ERRORS = {
    "cifar": {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43},
    "imagenet": {18: 27.88, 34: 24.52, 50: 22.85, 101: 21.75, 152: 21.43},
}

#: He et al. 2015's own training (zoo.recipes), per layout; the figure is filled in per depth
RECIPES = {
    "cifar": {"paper": Recipe(
        name="paper",
        summary="He et al. 2015, section 4.2: SGD 0.1, momentum 0.9, weight decay 1e-4, /10 at 32k and 48k of "
                "64k iterations, 4-pixel pad-and-crop and flips",
        hyperparameters={"optimizer": "momentum", "learning_rate": 0.1, "l2": 5e-5,
                         "batch_size": 128, "lr_schedule": "step", "lr_boundaries": [91, 136],
                         "lr_factors": [1.0, 0.1, 0.01], "epochs": 182, "patience": 0, "initializer": "he_normal"},
        augment=("pad_crop=4", "flip"),
        dataset="cifar10",
        figure=Figure("test_error", 0.0, "He et al. 2015, Table 6", dataset="cifar10"),
        budgets={"quick": {"epochs": 2, "limit": 5000}, "paper": {}},
        notes="Iterations as epochs of 352 batches (45,000 / 128): the steps after epochs 91 and 136 of 182. "
              "Weight decay 1e-4 is the L2 penalty 5e-5 (Keras adds 2 * l2 * w to the gradient). Per-pixel mean "
              "subtraction is replaced by the zoo's scaling of pixels to [0, 1] (batch norm follows the first "
              "convolution). The zoo splits CIFAR-10's 50,000 training images 85/15 (the paper: 45,000/5,000). "
              "The paper reports the best of 5 runs (ResNet-110: mean 6.61).",
        reference="He, Zhang, Ren & Sun 2015")},
    "imagenet": {"paper": Recipe(
        name="paper",
        summary="He et al. 2015, section 3.4: SGD 0.1 /10 on plateaus, momentum 0.9, weight decay 1e-4, batches "
                "of 256, 600k iterations, scale augmentation and flips",
        hyperparameters={"optimizer": "momentum", "learning_rate": 0.1, "l2": 5e-5,
                         "batch_size": 256, "epochs": 120, "patience": 0, "input_size": 224, "channels": 3},
        augment=("zoom=0.25", "flip"),
        dataset="imagenet2012",
        figure=Figure("test_top1_error", 0.0, "He et al. 2015, Table 3, 10-crop testing (ResNet-18: Table 2)",
                      dataset="imagenet2012"),
        budgets={"quick": {"epochs": 1, "limit": 10000}, "paper": {}},
        notes="The rate divided by 10 when the error plateaus: add the zoo's reduce-lr-on-plateau callback "
              "(--callback reduce-lr-on-plateau); scale augmentation (shorter side in [256, 480], 224 crops) and the "
              "colour augmentation are replaced by Keras's RandomZoom and RandomFlip; no 10-crop testing. ImageNet "
              "is not on this machine.",
        reference="He, Zhang, Ren & Sun 2015")},
}

#: name -> (layout, depth, shortcut option)
VARIANTS = {
    "resnet18": ("imagenet", 18, "B"),
    "resnet34": ("imagenet", 34, "B"),
    "resnet50": ("imagenet", 50, "B"),
    "resnet101": ("imagenet", 101, "B"),
    "resnet152": ("imagenet", 152, "B"),
    "resnet20": ("cifar", 20, "A"),
    "resnet32": ("cifar", 32, "A"),
    "resnet44": ("cifar", 44, "A"),
    "resnet56": ("cifar", 56, "A"),
    "resnet110": ("cifar", 110, "A"),
}

COMMON_SPACE = {
    "width": Choice(0.25, 0.5, 1.0),
    "dropout": Float(0.0, 0.5, step=0.1),
    "learning_rate": Float(1e-3, 0.2, sampling="log"),
}
#: depths a sweep tries by default; a deeper variant adds its own depth
SEARCH_DEPTHS = {"imagenet": (18, 34, 50), "cifar": (20, 32, 44, 56)}


def search_space(layout: str, depth: int) -> dict:
    depths = tuple(sorted({*SEARCH_DEPTHS[layout], depth}))
    return {**COMMON_SPACE, "depth": Choice(*depths)}


#: keras.applications' ImageNet files: depth -> (path under KERAS_APPLICATIONS, MD5), keras/src/applications/resnet.py
IMAGENET_WEIGHTS = {
    50: ("resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5", "2cb95161c43110f7111970584f804107"),
    101: ("resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5", "f1aeb4b969a6efcfb50fad2f0c20cfc5"),
    152: ("resnet/resnet152_weights_tf_dim_ordering_tf_kernels.h5", "100835be76be38e30d865e96f2aaae62"),
}
WEIGHTS_LICENSE = "MIT (Kaiming He's released weights, ported by keras.applications)"


def recipes(layout: str, depth: int) -> dict:
    """The layout's recipes, with the paper's figure for this depth (none for a depth it did not train)."""
    paper = RECIPES[layout]["paper"]
    value = PAPER_ERRORS[layout].get(depth)
    figure = replace(paper.figure, value=value) if value is not None else None
    return {"paper": replace(paper, figure=figure)}


def presets(depth: int) -> dict:
    if depth not in IMAGENET_WEIGHTS:
        return {}
    # keras.applications' ResNets: biased convolutions, the torch-style batch-norm epsilon the zoo uses
    return {"imagenet": imagenet_preset(*IMAGENET_WEIGHTS[depth], license=WEIGHTS_LICENSE,
                                        figure=keras_figure(f"resnet{depth}"), conv_bias=True)}


def _spec(name: str, layout: str, depth: int, shortcut: str) -> ModelSpec:
    if layout == "imagenet":
        kind, blocks = IMAGENET[depth]
        summary = f"ResNet-{depth} for ImageNet-size images ({kind} blocks {'-'.join(map(str, blocks))})"
    else:
        summary = f"ResNet-{depth} for CIFAR-size images (6n+2, n={(depth - 2) // 6}, shortcut option {shortcut})"
    return ModelSpec(
        name=name,
        family="resnet",
        summary=summary,
        tasks=("classification",),
        build=build,
        defaults={**COMMON, "layout": layout, "depth": depth, "shortcut": shortcut},
        search_space=search_space(layout, depth),
        input_ranks=(2, 3),
        capabilities=frozenset({"image", "transfer"}),
        default_dataset="digits",
        reference="He, Zhang, Ren & Sun 2015, Deep residual learning for image recognition",
        presets=presets(depth) if layout == "imagenet" else {},
        recipes=recipes(layout, depth),
    )


SPECS = {name: _spec(name, *args) for name, args in VARIANTS.items()}
resnet18, resnet34, resnet50, resnet101, resnet152 = (SPECS[f"resnet{d}"] for d in (18, 34, 50, 101, 152))
resnet20, resnet32, resnet44, resnet56, resnet110 = (SPECS[f"resnet{d}"] for d in (20, 32, 44, 56, 110))
