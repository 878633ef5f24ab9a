"""The built-in datasets as dataset plugins (zoo.spec.DatasetSource), declared in
pyproject.toml's `zoo.datasets` entry points exactly as a third party declares
theirs. Everything here is offline except the TFDS-backed names, which read
their original files from the data directory first.
"""

from __future__ import annotations

from typing import Any

from zoo.data import sequences, sources
from zoo.spec import DatasetSource


def _named(name: str) -> DatasetSource:
    loader, task, summary = sources.BUILTIN[name]
    return DatasetSource(name=name, summary=summary, task=task, read=lambda **options: loader())


def _tfds(name: str, summary: str) -> DatasetSource:
    def read(data_dir: Any = None, download: bool = True, **options: Any) -> sources.Raw:
        root = sources.data_dir(data_dir)
        local = sources.read_local(name, root)
        return local if local is not None else sources.read_tfds(name, root, download=download)

    return DatasetSource(name=name, summary=summary, task="classification", read=read)


xor = _named("xor")
spirals = _named("spirals")
digits = _named("digits")
iris = _named("iris")
breast_cancer = _named("breast_cancer")
wine = _named("wine")
diabetes = _named("diabetes")
sines = DatasetSource(name="sines", task="regression", read=lambda **options: sequences.sines(""),
                      summary="noisy multi-frequency signal, windows of 48 steps -> next value (forecasting, offline)")

mnist = _tfds("mnist", "handwritten digits 28x28, 10 classes (IDX files in the data dir, else TFDS)")
fashion_mnist = _tfds("fashion_mnist", "Zalando clothes 28x28, 10 classes (IDX files in the data dir, else TFDS)")
cifar10 = _tfds("cifar10", "32x32 colour images, 10 classes (the python batches in the data dir, else TFDS)")
imdb_reviews = _tfds("imdb_reviews", "movie reviews, positive/negative text (TFDS)")

csv = DatasetSource(
    name="csv", scheme=True, task="classification/regression",
    summary="csv:PATH, a CSV with a header; --target names the label column (default the last)",
    read=lambda rest, target=None, task=None, **options: sources.read_csv(rest, target=target, task=task))
npz = DatasetSource(
    name="npz", scheme=True, task="classification/regression",
    summary="npz:PATH, arrays x, y (or x_train, y_train, x_test, y_test)",
    read=lambda rest, task=None, **options: sources.read_npz(rest, task=task))
images = DatasetSource(
    name="images", scheme=True, task="classification", summary="images:DIR, one sub-folder of images per class",
    read=lambda rest, image_size=(64, 64), color_mode="rgb", **options: sources.read_image_folder(
        rest, image_size=image_size, color_mode=color_mode))
series = DatasetSource(
    name="series", scheme=True, task="regression",
    summary="series:PATH.csv?column=NAME&window=48&horizon=1, sliding windows over a time series "
            "(series:sines?... for the built-in signal)",
    read=lambda rest, target=None, **options: sequences.read_series(rest, target=target))
