"""Image augmentation with Keras preprocessing layers, chosen per run.

    train("lenet5", "mnist", augment=["translation", "rotation=0.05"])
    zoo train lenet5 -d mnist --augment translation,rotation=0.05

Each name may carry its strength after '=' (a fraction of the image for
translation and zoom, of a full turn for rotation, of the contrast for contrast;
the mode for flip: horizontal, vertical or horizontal_and_vertical; pixels for
pad_crop: zero-pad each side, then crop a random window of the image's size, the
CIFAR augmentation of He et al. 2015 with Keras's ZeroPadding2D and RandomCrop). The layers
are mapped over the training pipeline only, so validation, test, evaluation and
exported models see the images as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.errors import ZooError, did_you_mean
from zoo.spec import DataSpec

#: name -> default strength
AUGMENTATIONS: dict[str, Any] = {
    "flip": "horizontal",
    "translation": 0.1,
    "rotation": 0.05,
    "zoom": 0.1,
    "contrast": 0.2,
    "pad_crop": 4,
}
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def parse(augment: str | Sequence[str] | None) -> list[tuple[str, Any]]:
    """'flip,translation=0.2' or ['flip', 'translation=0.2'] -> [(name, strength)]."""
    if not augment:
        return []
    items = augment.split(",") if isinstance(augment, str) else list(augment)
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS:
            raise ZooError(f"unknown augmentation {name!r}." + did_you_mean(name, AUGMENTATIONS)
                           + f" Known: {', '.join(AUGMENTATIONS)}.")
        strength: Any = AUGMENTATIONS[name]
        if eq:
            if name == "flip":
                strength = value.strip()
                if strength not in FLIP_MODES:
                    raise ZooError(f"flip takes one of {', '.join(FLIP_MODES)}, got {value!r}")
            elif name == "pad_crop":
                if not value.strip().isdigit() or int(value) < 1:
                    raise ZooError(f"pad_crop takes a number of pixels (>= 1) after '=', got {value!r}")
                strength = int(value)
            else:
                try:
                    strength = float(value)
                except ValueError:
                    raise ZooError(f"augmentation {name!r} takes a number after '=', got {value!r}") from None
                if not 0 < strength <= 1:
                    raise ZooError(f"augmentation {name!r} strength must be in (0, 1], got {strength}")
        out.append((name, strength))
    return out


def layers(augment: str | Sequence[str] | None, data_spec: DataSpec, seed: int = 0):
    """A keras.Sequential of the chosen preprocessing layers (None when none chosen)."""
    import keras

    chosen = parse(augment)
    if not chosen:
        return None
    if data_spec.input_kind != "image" or len(data_spec.input_shape) != 3:
        raise ZooError(f"augmentation applies to images of shape (height, width, channels); dataset "
                       f"{data_spec.name!r} has examples of shape {tuple(data_spec.input_shape)}")
    value_range = tuple(data_spec.value_range) if data_spec.value_range else None
    made = []
    for i, (name, s) in enumerate(chosen):
        seed_i = int(seed) + 1000 * (i + 1)
        if name == "flip":
            made.append(keras.layers.RandomFlip(s, seed=seed_i, name="flip"))
        elif name == "translation":
            made.append(keras.layers.RandomTranslation(s, s, fill_mode="constant", seed=seed_i, name="translation"))
        elif name == "rotation":
            made.append(keras.layers.RandomRotation(s, fill_mode="constant", seed=seed_i, name="rotation"))
        elif name == "zoom":
            made.append(keras.layers.RandomZoom(s, s, fill_mode="constant", seed=seed_i, name="zoom"))
        elif name == "pad_crop":
            height, width = (int(d) for d in data_spec.input_shape[:2])
            made.append(keras.layers.ZeroPadding2D(s, name="pad_crop_pad"))
            made.append(keras.layers.RandomCrop(height, width, seed=seed_i, name="pad_crop"))
        elif name == "contrast":
            if value_range is None:
                raise ZooError("contrast augmentation needs images with a known value range (pixels scaled to [0, 1])")
            made.append(keras.layers.RandomContrast(s, value_range=value_range, seed=seed_i, name="contrast"))
    return keras.Sequential(made, name="augmentation")


def apply(dataset, augment: str | Sequence[str] | None, data_spec: DataSpec, seed: int = 0,
          targets: str = "labels"):
    """The batched training pipeline with the augmentation mapped over its inputs
    (and over the targets too when they are the inputs, for reconstruction)."""
    from zoo.data import parallel_map

    model = layers(augment, data_spec, seed)
    if model is None:
        return dataset

    def augment_batch(x, y):
        a = model(x, training=True)
        return (a, a) if targets == "inputs" else (a, y)

    return dataset.map(augment_batch, **parallel_map())
