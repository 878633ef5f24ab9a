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
from typing import Any

from zoo.errors import ZooError
from zoo.spec import DataSpec

#: hyperparameters of every image family's input block
INPUT_DEFAULTS = {
    "input_size": 0,  # side the network sees; 0: the data's own (at least the family's minimum)
    "channels": 0,  # 1 or 3: convert grey<->RGB in the model; 0: the data's own
}

#: the largest gap zero-padded rather than resized (MNIST 28 -> 32 pads 2 pixels a side)
MAX_PADDING = 8


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
    return inputs, x


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
