"""One data path: a dataset name or URI -> train/validation/test pipelines and a DataSpec.

    load("digits")                       scikit-learn's digits, offline
    load("csv:prices.csv", target="price")
    load("npz:arrays.npz"), load("images:photos/")
    load("mnist", data_dir="~/data")     IDX files under ~/data/mnist/, else TFDS

Splits are seeded; normalisation (standardised features, pixels scaled to [0, 1])
is learned on the training split only and recorded in the DataSpec so that an
exported model can serve raw inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data import checks, sequences, sources
from zoo.data.sources import Raw
from zoo.errors import ZooError
from zoo.spec import DataSpec

#: train/validation/test fractions. The test split is as large as the validation split: an
#: accuracy p measured on n examples has a standard error of sqrt(p(1 - p) / n), so a 5% test
#: split (iris: 8 examples) cannot tell 0.6 from 0.9; 15% gives iris 23 and digits 270.
DEFAULT_SPLIT = (0.7, 0.15, 0.15)
URI_SCHEMES = ("csv", "npz", "images", "series")


@dataclass
class Dataset:
    """Preprocessed splits as arrays, with tf.data pipelines made on demand."""

    spec: DataSpec
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    batch_size: int = 32
    seed: int = 0

    def pairs(self, split: str, targets: str = "labels") -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) arrays of `split`; `targets="inputs"` pairs the inputs with themselves."""
        x, y = self.arrays[split]
        return x, (x if targets == "inputs" else y)

    def fit_data(self, *, batch_size: int | None = None, targets: str = "labels",
                 pipeline: bool = False) -> dict[str, Any]:
        """Keras `fit` data arguments for the train and val splits. By default the
        in-memory arrays themselves, as a plain `model.fit(x, y, validation_data=...)`
        reads them: Keras batches and shuffles them with its own adapter for the
        backend (tf.data on TensorFlow, a NumPy iterator on JAX), so nothing stands
        between the data and the model. `pipeline=True` (batches to transform or
        shard), or text, which Keras's array adapter cannot take, gives the zoo's
        tf.data pipelines instead."""
        x, y = self.pairs("train", targets)
        if pipeline or x.dtype.kind not in "biuf":
            return {"x": self.pipeline("train", batch_size=batch_size, targets=targets), "shuffle": False,
                    "validation_data": self.pipeline("val", batch_size=batch_size, targets=targets)}
        # Validation through the zoo's pipeline on TensorFlow: Keras's array adapter maps the validation
        # arrays in parallel, and under op determinism (seeded runs) TensorFlow 2.21 rewrites that map
        # and logs "NodeDef mentions attribute use_unbounded_threadpool" at every fit.
        validation = (self.pipeline("val", batch_size=batch_size, targets=targets) if _tensorflow_backend()
                      else self.pairs("val", targets))
        return {"x": x, "y": y, "batch_size": batch_size or self.batch_size, "shuffle": True,
                "validation_data": validation}

    def pipeline(self, split: str, *, batch_size: int | None = None, shuffle: bool | None = None,
                 targets: str = "labels"):
        """A batched, prefetched tf.data pipeline of `split` (shuffled for train).

        `targets="inputs"` pairs each input with itself (for reconstruction).
        Shuffles and batches example indices, then gathers whole batches from the
        in-memory arrays: one vectorised op per batch instead of per-example work
        (measured 1.4-3.7x faster to iterate on MNIST-shaped data, and it leaves the
        CPU to the model). Under tf.distribute each worker takes its share of every
        global batch (auto-shard by DATA: in-memory arrays have no files to shard).
        """
        import tensorflow as tf

        x, y = self.pairs(split, targets)
        xs = tf.constant(x)
        ys = xs if y is x else tf.constant(y)
        ds = tf.data.Dataset.range(len(x))
        if shuffle if shuffle is not None else split == "train":
            ds = ds.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or self.batch_size).map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)),
                                                         **parallel_map())
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    @property
    def train(self):
        return self.pipeline("train")

    @property
    def val(self):
        return self.pipeline("val")

    @property
    def test(self):
        return self.pipeline("test")


def batches(x, batch_size: int = 256):
    """An array in batches for Keras's `predict`/`evaluate`/`validation_data`,
    in order. On TensorFlow a plain tf.data pipeline: Keras's array adapter maps
    the batches in parallel, which op determinism (seeded runs) rewrites with a
    logged NodeDef error. Elsewhere the array itself (give Keras the batch size)."""
    if not _tensorflow_backend():
        return x
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)


def predict(model, x, batch_size: int = 256):
    """`model.predict` on an array, in batches (see `batches`)."""
    return model.predict(batches(x, batch_size), batch_size=None if _tensorflow_backend() else batch_size, verbose=0)


def _tensorflow_backend() -> bool:
    import keras

    return keras.config.backend() == "tensorflow"


def parallel_map() -> dict[str, Any]:
    """tf.data map arguments: sequential under op determinism (seeded runs), where
    TensorFlow would run the map one batch at a time anyway, rewriting it with a
    logged NodeDef error; parallel and in order otherwise."""
    import tensorflow as tf
    from tensorflow.python.framework import config  # no public is_op_determinism_enabled in TF 2.21

    return {} if config.is_op_determinism_enabled() else {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}


def check(name: str, data_dir: str | os.PathLike | None = None) -> None:
    """Refuse a dataset name or URI that cannot be read, before anything heavy is
    imported (TensorFlow takes seconds): an unknown scheme, a missing file or
    folder, a name no source knows (with a suggestion). What passes may still fail
    later for reasons only reading shows (a corrupt file, no network)."""
    from zoo import registry

    scheme, _, rest = name.partition(":")
    if rest and scheme in URI_SCHEMES:
        path = rest.split("?", 1)[0]
        what = {"csv": "CSV file", "npz": "NPZ file", "images": "image folder", "series": "series file"}[scheme]
        if not (scheme == "series" and path == "sines"):
            sources._existing(path, what)
        return
    found, key = source(name)  # a plugin's scheme, or DIST:NAME, or an unknown scheme (refused here)
    root = sources.data_dir(data_dir)
    if found is not None or (root / key).exists() or (root / f"{key}.npz").exists():
        return
    if key not in _tfds_names():
        from zoo.errors import did_you_mean

        known = [*registry.datasets.names(), *sources.ALIASES]
        raise ZooError(f"unknown dataset {name!r}." + did_you_mean(name, known) + " Run `zoo datasets` to see the "
                       "known ones; files are csv:PATH, npz:PATH, images:DIR or series:PATH.csv")


def _tfds_names() -> set[str]:
    """Every name TensorFlow Datasets might know, read from its source files
    without importing it (a superset: module, folder and builder-class names)."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or spec.origin is None:
        return set()
    classes = re.compile(r"^class (\w+)\(", re.M)
    named = re.compile(r"^\s+name\s*=\s*['\"](\w+)['\"]", re.M)
    names: set[str] = set()
    for folder, dirs, files in os.walk(os.path.dirname(spec.origin)):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        names.update(dirs)
        for f in files:
            if f.endswith(".py") and not f.endswith("_test.py"):
                names.add(f[:-3])
                with open(os.path.join(folder, f), encoding="utf-8", errors="ignore") as fh:
                    text = fh.read()
                names.update(named.findall(text))
                for c in classes.findall(text):  # TFDS names a builder after its class, in snake case
                    names.add(re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", c).lower())
                    names.add(re.sub(r"(?<!^)(?=[A-Z])", "_", c).lower())
    return names


def catalog() -> list[tuple[str, str, str, str]]:
    """(name, task, description, from) of every dataset plugin (the built-ins
    included), for `zoo datasets`; broken plugins are reported by the registry."""
    from zoo import registry

    rows = []
    found = registry.datasets.entries()
    loaded, _ = registry.datasets.load_all()
    for src in sorted(loaded, key=lambda d: (d.scheme, d.name)):
        dists = found.get(src.name, [])
        origin = ", ".join(e.origin for e in dists)
        rows.append((f"{src.name}:..." if src.scheme else src.name, src.task, src.summary, origin))
    rows.append(("<any TFDS name>", "as TFDS says", "downloaded into the data dir when online", "tensorflow-datasets"))
    return rows


def source(name: str):
    """The dataset plugin (zoo.spec.DatasetSource) a name or URI means, with the
    rest of a URI: (source, rest); (None, name) for a name only TFDS may know."""
    from zoo import registry

    scheme, sep, rest = name.partition(":")
    known = registry.datasets.names()
    if sep and rest and scheme in known:
        found = registry.datasets.get(scheme)
        if found.scheme:
            return found, rest
    if sep and rest and len(scheme) > 1:
        try:  # DIST:NAME, a dataset by its distribution
            found = registry.datasets.get(name)
        except ZooError:
            schemes = [n for n in known if registry.datasets.get(n).scheme]
            raise ZooError(f"unknown dataset scheme {scheme!r}; use one of {', '.join(s + ':' for s in schemes)}, "
                           "or DIST:NAME for a dataset plugin") from None
        return found, ""
    key = sources.ALIASES.get(name, name)
    if key in known:
        found = registry.datasets.get(key)
        if found.scheme:
            raise ZooError(f"{key!r} is a scheme: give it a path, e.g. {key}:PATH")
        return found, ""
    return None, key


def read(name: str, *, data_dir: str | os.PathLike | None = None, target: str | None = None,
         task: str | None = None, image_size: tuple[int, int] = (64, 64), color_mode: str = "rgb",
         download: bool = True) -> Raw:
    """The raw examples of a dataset name or URI, before splitting: a dataset
    plugin (`zoo.datasets`, the built-ins included) or, for any other name,
    its files in the data directory, else TensorFlow Datasets."""
    found, rest = source(name)
    options = {"data_dir": data_dir, "target": target, "task": task, "image_size": image_size,
               "color_mode": color_mode, "download": download}
    if found is None:
        root = sources.data_dir(data_dir)
        local = sources.read_local(rest, root)
        return local if local is not None else sources.read_tfds(rest, root, download=download)
    raw = found.read(rest, **options) if found.scheme else found.read(**options)
    if not isinstance(raw, Raw):
        raise ZooError(f"dataset {name!r} gave a {type(raw).__name__}, not a zoo.data.Raw; its plugin must return "
                       "Raw(x, y, task, input_kind, ...)")
    return raw


def load(name: str, *, batch_size: int = 32, split: tuple[float, float, float] | None = None, seed: int = 0,
         normalize: bool = True, data_dir: str | os.PathLike | None = None, target: str | None = None,
         task: str | None = None, limit: int | None = None, resize: int | tuple[int, int] | None = None,
         channels: int | None = None, **read_options: Any) -> Dataset:
    """Load dataset `name` (a built-in, a TFDS name, or csv:/npz:/images: URI).

    `split` gives train/validation/test fractions (default 70/15/15); a dataset
    with an official test split keeps it as test and splits the rest train:val
    in the same ratio. `limit` caps the number of training examples (quick runs).
    `resize` (a side or (height, width)) and `channels` (1 or 3) adapt images.
    """
    if batch_size < 1:
        raise ZooError(f"batch size must be at least 1, got {batch_size}")
    raw = read(name, data_dir=data_dir, target=target, task=task, **read_options)
    checks.check_raw(raw, name)
    raw = sources.adapt_images(raw, resize, channels)
    parts = _split(raw, split, seed)
    checks.check_splits(parts, raw, name)
    if limit:
        parts["train"] = tuple(a[:limit] for a in parts["train"])
        checks.note_limited(parts["train"][1], raw, limit)
    preprocessing, value_range = _fit_preprocessing(raw, parts["train"][0], normalize)
    if "windowing" in raw.meta:  # how a series became windows (sequences.windows)
        preprocessing["windowing"] = raw.meta["windowing"]
    arrays = {k: (preprocess(preprocessing, x), y) for k, (x, y) in parts.items()}
    if raw.task == "regression":
        ytr = parts["train"][1]
        preprocessing["target"] = {"mean": ytr.mean(axis=0).tolist(), "std": _safe_std(ytr).tolist()}
    spec = DataSpec(
        name=name,
        task=raw.task,
        input_shape=tuple(int(d) for d in arrays["train"][0].shape[1:]),
        num_classes=len(raw.class_names) if raw.class_names else None,
        class_names=raw.class_names,
        num_targets=int(raw.y.shape[1]) if raw.task == "regression" else None,
        input_kind=raw.input_kind,
        preprocessing=preprocessing,
        value_range=value_range,
        sizes={k: len(v[0]) for k, v in arrays.items()},
    )
    return Dataset(spec, arrays, batch_size=batch_size, seed=seed)


def _split(raw: Raw, split, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import train_test_split

    fractions = tuple(split or DEFAULT_SPLIT)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or fractions[0] == 0:
        raise ZooError(f"split must be three fractions (train, val, test) summing to 1, got {fractions}")
    train_frac, val_frac, test_frac = fractions
    stratify = raw.task == "classification"
    ordered = bool(raw.meta.get("ordered"))  # time-ordered windows: split chronologically

    def cut(x, y, fraction):
        if fraction == 0:
            return (x, y), (x[:0], y[:0])
        if ordered:
            cut_at = len(x) - max(1, round(len(x) * fraction))
            return (x[:cut_at], y[:cut_at]), (x[cut_at:], y[cut_at:])
        for strata in ((y, None) if stratify else (None,)):
            try:
                xa, xb, ya, yb = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=strata)
                return (xa, ya), (xb, yb)
            except ValueError:  # too few examples of a class to stratify, or too few to split at all
                continue
        raise ZooError(f"dataset too small for split {fractions}: {len(raw.x)} examples")

    if raw.test is not None and split is None:
        rest, test = (raw.x, raw.y), raw.test
    else:
        rest, test = cut(raw.x, raw.y, test_frac)
    train, val = cut(*rest, val_frac / (train_frac + val_frac))
    if len(train[0]) == 0 or len(val[0]) == 0 or len(test[0]) == 0:
        raise ZooError(f"dataset too small for split {fractions}: {len(raw.x)} examples")
    return {"train": train, "val": val, "test": test}


def _safe_std(a: np.ndarray) -> np.ndarray:
    std = a.std(axis=0)
    return np.where(std > 1e-8, std, 1.0).astype("float32")


def _fit_preprocessing(raw: Raw, x_train: np.ndarray, normalize: bool) -> tuple[dict, tuple | None]:
    """How raw inputs become model inputs, learned on the training split only."""
    if raw.input_kind == "text":  # models vectorise text themselves, with the training split's vocabulary
        return {"type": "text", "vocabulary": sequences.text_vocabulary(x_train), "standardize":
                "lower_and_strip_punctuation", "split": "whitespace"}, None
    if not normalize:
        return {"type": "none"}, None
    if raw.input_kind == "sequence":  # one mean/std per feature, shared by every time step
        axes = tuple(range(x_train.ndim - 1))
        std = x_train.std(axis=axes)
        return {"type": "standardize", "mean": x_train.mean(axis=axes).tolist(),
                "std": np.where(std > 1e-8, std, 1.0).astype("float32").tolist()}, None
    if raw.pixel_max:  # the training pixels' mean tells `zoo predict` what the images looked like (polarity)
        return {"type": "rescale", "scale": 1.0 / raw.pixel_max, "offset": 0.0, "raw_max": float(raw.pixel_max),
                "raw_mean": float(np.mean(x_train, dtype="float64"))}, (0.0, 1.0)
    return {"type": "standardize", "mean": x_train.mean(axis=0).tolist(), "std": _safe_std(x_train).tolist()}, None


def preprocess(preprocessing: dict, x: np.ndarray) -> np.ndarray:
    """Apply a fitted preprocessing to raw inputs (numpy); see DataSpec.preprocessing."""
    kind = preprocessing["type"]
    if kind == "rescale":
        return (x.astype("float32") * preprocessing["scale"] + preprocessing["offset"]).astype("float32")
    if kind == "standardize":
        mean = np.asarray(preprocessing["mean"], "float32")
        return ((x.astype("float32") - mean) / np.asarray(preprocessing["std"], "float32")).astype("float32")
    return x

