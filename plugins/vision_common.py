"""Shared pieces of the image families (LeNet, VGG, ResNet): the input block that
fits a dataset's images to what the network expects, and the search-space
entries they share.

The input block lives in the model, not in the data path, so a trained or
exported model takes the dataset's own images: MNIST's 28x28 is zero-padded to
LeNet's 32x32 input plan, the 8x8 digits are resized, grey images are repeated
to RGB for a colour network (and RGB is turned to luminance for a grey one).

This module imports Keras only inside functions, so listing models stays free
of TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.spec import DataSpec, Figure, WeightPreset

#: hyperparameters of every image family's input block
INPUT_DEFAULTS = {
    "input_size": 0,  # side the network sees; 0: the data's own (at least the family's minimum)
    "channels": 0,  # 1 or 3: convert grey<->RGB in the model; 0: the data's own
    "preprocess": "none",  # pixels as the weights expect them, inside the model: see PREPROCESSING
}

#: the input block's last step, per channel: (x * scale + offset - mean) / std, after
#: putting the channels in `order`. caffe, tf and torch are keras.applications'
#: preprocess_input modes and take raw 0-255 RGB pixels (load the data unscaled);
#: lecun is LeCun et al. 1998's input scaling of [0, 1] images (background -0.1, ink 1.175).
PREPROCESSING = {
    "none": None,
    "caffe": {"order": "bgr", "scale": 1.0, "offset": 0.0, "mean": (103.939, 116.779, 123.68), "std": (1.0,) * 3},
    "tf": {"order": "rgb", "scale": 1 / 127.5, "offset": -1.0, "mean": (0.0,) * 3, "std": (1.0,) * 3},
    "torch": {"order": "rgb", "scale": 1 / 255, "offset": 0.0, "mean": (0.485, 0.456, 0.406),
              "std": (0.229, 0.224, 0.225)},
    "lecun": {"order": "rgb", "scale": 1.275, "offset": -0.1, "mean": None, "std": None},
}

#: the largest gap zero-padded rather than resized (MNIST 28 -> 32 pads 2 pixels a side)
MAX_PADDING = 8


#: where keras.applications publishes its weights (keras/src/applications/*.py)
KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
PRESETS_DIR = Path(__file__).with_name("presets")


def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in keras.applications' order (its class index:
    the WordNet IDs sorted, as TFDS lists them)."""
    lines = (PRESETS_DIR / "imagenet_classes.txt").read_text().splitlines()
    return tuple(line.split(" ", 1)[1] for line in lines if line)


#: keras.applications' top-1 ImageNet validation accuracy per weights file, as Keras publishes it
#: (keras.io/api/applications: single centre crop); not measured here (no ImageNet on this machine)
KERAS_TOP1 = {"vgg16": 0.713, "vgg19": 0.713, "resnet50": 0.749, "resnet101": 0.764, "resnet152": 0.766}


def keras_figure(model: str) -> Figure:
    return Figure("test_accuracy", KERAS_TOP1[model], "published by Keras (keras.io/api/applications: top-1, single "
                  "centre crop, ImageNet 2012 validation); not measured by the zoo", dataset="imagenet2012")


def imagenet_preset(path: str, md5: str, license: str, figure: Figure | None = None, **layout: Any) -> WeightPreset:
    """keras.applications' ImageNet weights (with the top) as a preset: the same URL and
    hash (keras.applications publishes MD5s), caffe preprocessing in the input block (raw
    0-255 RGB in), 224x224x3, its classifier layer `predictions` loaded as the zoo's `output`;
    `figure`: the accuracy Keras publishes for the file."""
    return WeightPreset(figure=figure, 
        name="imagenet", source=KERAS_APPLICATIONS + path, md5=md5, license=license, classifier="predictions",
        hyperparameters={"preprocess": "caffe", "input_size": 224, "channels": 3, **layout},
        data={"name": "imagenet", "task": "classification", "input_shape": [224, 224, 3], "num_classes": 1000,
              "class_names": list(imagenet_classes()), "input_kind": "image", "preprocessing": {"type": "none"},
              "value_range": [0.0, 255.0]},
        summary="keras.applications' ImageNet weights: raw 0-255 RGB images of 224x224 in, 1,000 classes out")


def image_shape(data_spec: DataSpec) -> tuple[int, int, int]:
    """(height, width, channels) of one example; grey images may come without a channel axis."""
    shape = tuple(int(d) for d in data_spec.input_shape)
    if len(shape) == 2:
        return (*shape, 1)
    if len(shape) != 3:
        raise ZooError(f"image models take examples of shape (height, width[, channels]); dataset "
                       f"{data_spec.name!r} has {shape}. Use an image dataset (e.g. digits, mnist, images:DIR).")
    return shape  # type: ignore[return-value]


def target_shape(hp: Mapping[str, Any], data_spec: DataSpec, min_size: int) -> tuple[int, int, int]:
    """The (size, size, channels) the network body receives after the input block."""
    h, w, c = image_shape(data_spec)
    size = int(hp.get("input_size", 0) or 0)
    channels = int(hp.get("channels", 0) or 0) or c
    if channels not in (1, 3) and channels != c:
        raise ZooError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if size < 0:
        raise ZooError(f"input_size must be positive (or 0 for the data's own size), got {size}")
    if size == 0:
        if h == w and h >= min_size:
            return h, w, channels
        size = max(min_size, h, w)
    return size, size, channels


def input_block(hp: Mapping[str, Any], data_spec: DataSpec, min_size: int):
    """keras.Input for the data's images and the tensor the body starts from.

    Zero-pads when the data is a little smaller than the target (<= 8 pixels,
    an even gap, as LeNet-5's 28 -> 32 plan), resizes (bilinear) otherwise, and
    converts grey <-> RGB when `channels` asks for it.
    """
    import keras

    shape = tuple(int(d) for d in data_spec.input_shape)
    inputs = keras.Input(shape=shape, name="image")
    h, w, c = image_shape(data_spec)
    x = keras.layers.Reshape((h, w, 1), name="add_channel")(inputs) if len(shape) == 2 else inputs
    th, tw, tc = target_shape(hp, data_spec, min_size)
    if tc != c:
        if (c, tc) not in ((1, 3), (3, 1)):
            raise ZooError(f"cannot convert {c}-channel images to {tc} channels; use channels=1 or 3")
        x = convert_channels(x, tc)
    if (th, tw) != (h, w):
        dh, dw = th - h, tw - w
        if 0 <= dh <= MAX_PADDING and 0 <= dw <= MAX_PADDING and dh % 2 == 0 and dw % 2 == 0:
            x = keras.layers.ZeroPadding2D(((dh // 2, dh // 2), (dw // 2, dw // 2)), name="pad")(x)
        else:
            x = keras.layers.Resizing(th, tw, interpolation="bilinear", name="resize")(x)
    return inputs, preprocess(x, hp.get("preprocess", "none"))


def preprocess(x, mode: str):
    """PREPROCESSING[mode] as one fixed 1x1 convolution named "preprocess" (a channel
    permutation scaled per channel, and a bias): a built-in layer, so saved models
    reload without custom objects; for caffe it computes exactly what
    keras.applications' preprocess_input does (a flip, then the mean subtracted)."""
    import keras
    import numpy as np

    if mode not in PREPROCESSING:
        raise ZooError(f"preprocess must be one of {', '.join(PREPROCESSING)}, got {mode!r}")
    p = PREPROCESSING[mode]
    if p is None:
        return x
    channels = int(x.shape[-1])
    if p["mean"] is not None and channels != 3:
        raise ZooError(f"preprocess={mode} is for RGB images; set channels=3 (the images have {channels})")
    mean = np.asarray(p["mean"] if p["mean"] is not None else (0.0,) * channels, "float64")
    std = np.asarray(p["std"] if p["std"] is not None else (1.0,) * channels, "float64")
    order = list(range(channels))[::-1] if p["order"] == "bgr" else list(range(channels))
    kernel = np.zeros((1, 1, channels, channels))
    for out, source in enumerate(order):
        kernel[0, 0, source, out] = p["scale"] / std[out]
    bias = (p["offset"] - mean) / std
    return keras.layers.Conv2D(channels, 1, trainable=False, name="preprocess",
                               kernel_initializer=keras.initializers.Constant(kernel.astype("float32").tolist()),
                               bias_initializer=keras.initializers.Constant(bias.astype("float32").tolist()))(x)


def scaled(n: int, width: float) -> int:
    """A layer width times the width multiplier, at least 1."""
    if not width > 0:
        raise ZooError(f"width multiplier must be positive, got {width}")
    return max(1, int(round(n * float(width))))


def convert_channels(x, channels: int):
    """Grey -> RGB (the channel repeated) or RGB -> grey (ITU-R 601 luminance),
    with built-in layers only so saved models reload without custom objects."""
    import keras

    if channels == 3:
        return keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    luminance = [[[[0.299], [0.587], [0.114]]]]
    return keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_grey",
                               kernel_initializer=keras.initializers.Constant(luminance))(x)
