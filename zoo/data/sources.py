"""Where examples come from: built-in generators, scikit-learn's bundled sets,
local files (CSV, NPZ, image folders, IDX) and TensorFlow Datasets.

Every source returns a `Raw`: numpy arrays plus what they are. Splitting,
normalisation and tf.data pipelines are done once, in zoo.data.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import checks
from zoo.errors import ZooError, did_you_mean


@dataclass
class Raw:
    """Examples as arrays. `test` holds an official test split when the data has one."""

    x: np.ndarray
    y: np.ndarray
    task: str
    input_kind: str = "tabular"  # tabular, image, sequence, text
    class_names: tuple[str, ...] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    pixel_max: float | None = None  # images: the raw maximum (255, 16), scaled to 1
    meta: dict[str, Any] = field(default_factory=dict)


# --- generated and bundled -----------------------------------------------------


def xor(n: int = 800, noise: float = 0.15, seed: int = 0) -> Raw:
    """Noisy XOR: points around the four corners of the unit square; the label is
    the XOR of the corner's coordinates. Not linearly separable."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = corners + rng.normal(0, noise, size=(n, 2))
    y = np.logical_xor(corners[:, 0], corners[:, 1]).astype("int64")
    return Raw(x.astype("float32"), y, "classification", class_names=("0", "1"))


def two_spirals(n: int = 1000, noise: float = 0.3, turns: float = 2.0, seed: int = 0) -> Raw:
    """Lang & Witbrock's two interleaved spirals, a classic hard 2-D problem."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.sqrt(rng.uniform(0, 1, half)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.normal(0, noise, (half, 2))
    x = np.concatenate([arm, -arm]).astype("float32")
    y = np.concatenate([np.zeros(half), np.ones(half)]).astype("int64")
    return Raw(x, y, "classification", class_names=("spiral_a", "spiral_b"))


def _sklearn(loader_name: str, task: str) -> Callable[[], Raw]:
    def load() -> Raw:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        x = np.asarray(bunch.data, dtype="float32")
        if task == "regression":
            return Raw(x, np.asarray(bunch.target, "float32").reshape(-1, 1), task)
        names = tuple(str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target)))
        return Raw(x, np.asarray(bunch.target, "int64"), task, class_names=names)

    load.__doc__ = f"scikit-learn's bundled {loader_name[5:]} dataset."
    return load


def digits() -> Raw:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 17 grey levels)."""
    raw = _sklearn("load_digits", "classification")()
    return Raw(raw.x.reshape(-1, 8, 8, 1), raw.y, "classification", "image",
               tuple(str(i) for i in range(10)), pixel_max=16.0)


# name -> (loader, task, description); all offline
BUILTIN: dict[str, tuple[Callable[[], Raw], str, str]] = {
    "xor": (xor, "classification", "noisy XOR of two inputs (800 points), not linearly separable"),
    "spirals": (two_spirals, "classification", "two interleaved spirals (1,000 points)"),
    "digits": (digits, "classification", "8x8 handwritten digits, 10 classes (scikit-learn)"),
    "iris": (_sklearn("load_iris", "classification"), "classification", "iris flowers, 4 features, 3 classes (scikit-learn)"),
    "breast_cancer": (_sklearn("load_breast_cancer", "classification"), "classification",
                      "Wisconsin breast cancer, 30 features, 2 classes (scikit-learn)"),
    "wine": (_sklearn("load_wine", "classification"), "classification", "wine cultivars, 13 features, 3 classes (scikit-learn)"),
    "diabetes": (_sklearn("load_diabetes", "regression"), "regression",
                 "diabetes progression, 10 features, 1 target (scikit-learn)"),
}
ALIASES = {"two_spirals": "spirals"}


# --- files ---------------------------------------------------------------------


def _existing(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ZooError(f"{what} {str(p)!r} does not exist")
    return p


def read_csv(path: str, target: str | None = None, task: str | None = None) -> Raw:
    """A CSV with a header row; `target` names the label column (default: the last).
    Features must be numeric; a text target makes a classification task."""
    p = _existing(path, "CSV file")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"cannot read CSV {str(p)!r}: {exc}") from None
    if len(rows) < 2:
        raise ZooError(f"CSV {str(p)!r} needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    target = target or header[-1]
    if target not in header:
        raise ZooError(f"CSV {str(p)!r} has no column {target!r}; columns: {', '.join(header)}")
    t = header.index(target)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ZooError(f"CSV {str(p)!r} line {i} has {len(row)} fields, the header has {len(header)}")
    features = [j for j in range(len(header)) if j != t]
    x = np.empty((len(body), len(features)), dtype="float64")  # float32 after the range check
    for i, row in enumerate(body):
        for k, j in enumerate(features):
            try:
                x[i, k] = float(row[j])
            except ValueError:
                raise ZooError(f"CSV {str(p)!r} line {i + 2}, column {header[j]!r}: {row[j]!r} is not a number "
                               "(features must be numeric)") from None
    _check_column_values(x, p, [header[j] for j in features])
    x = x.astype("float32")
    labels = [row[t].strip() for row in body]
    numeric = _all_numbers(labels)
    if numeric:
        _check_column_values(np.asarray(labels, "float64").reshape(-1, 1), p, [target])
    task = task or ("regression" if numeric and _looks_continuous(labels) else "classification")
    if task == "regression":
        if not numeric:
            raise ZooError(f"CSV target column {target!r} must be numeric for regression")
        return Raw(x, np.asarray(labels, "float32").reshape(-1, 1), task, meta={"features": [header[j] for j in features]})
    names = sorted(set(labels), key=lambda v: (float(v), v) if numeric else (0, v))
    index = {n: i for i, n in enumerate(names)}
    return Raw(x, np.asarray([index[v] for v in labels], "int64"), task, class_names=tuple(names),
               meta={"features": [header[j] for j in features]})


def _check_column_values(a: np.ndarray, path: Path, columns: list[str]) -> None:
    """Refuse the first NaN, infinite or float32-overflowing value, by line and column."""
    bad = checks.nonfinite(a)
    if bad:
        (i, k), cause = bad
        raise ZooError(f"CSV {str(path)!r} line {i + 2}, column {columns[k]!r} {cause}")


def _all_numbers(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
        return True
    except ValueError:
        return False


def _looks_continuous(values: list[str]) -> bool:
    numbers = np.asarray(values, dtype="float64")
    return not np.all(numbers == np.round(numbers)) or len(np.unique(numbers)) > 20


def read_npz(path: str, task: str | None = None) -> Raw:
    """An .npz with `x` and `y`, or `x_train`, `y_train` (+ `x_test`, `y_test`)."""
    p = _existing(path, "NPZ file")
    try:
        with p.open("rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY":
            raise ValueError("it is a .npy file (one array); save x and y together with numpy.savez")
        if not head.startswith(b"PK"):  # np.load would call it pickled data
            raise ValueError(f"not an .npz file (a zip of arrays, as numpy.savez writes); it starts with {head!r}")
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise ZooError(f"cannot read NPZ {str(p)!r}: {exc}") from None
    if {"x", "y"} <= arrays.keys():
        x, y, test = arrays["x"], arrays["y"], None
    elif {"x_train", "y_train"} <= arrays.keys():
        x, y = arrays["x_train"], arrays["y_train"]
        test = (arrays["x_test"], arrays["y_test"]) if {"x_test", "y_test"} <= arrays.keys() else None
    else:
        raise ZooError(f"NPZ {str(p)!r} must hold arrays x and y, or x_train and y_train; it has {sorted(arrays)}")
    return _from_arrays(x, y, test, task, str(p))


def _from_arrays(x, y, test, task, where) -> Raw:
    checks.check_arrays(x, y, where)
    if test is not None:
        checks.check_arrays(*test, f"{where} (x_test, y_test)")
    integer_labels = y.dtype.kind in "iub"
    task = task or ("classification" if integer_labels else "regression")
    if task == "classification" and not integer_labels and np.any(y != np.round(y)):
        raise ZooError(f"{where}: classification labels must be whole numbers (class indices); y holds {y.dtype} "
                       "values such as " + repr(float(y[y != np.round(y)][0])))
    image = x.ndim >= 3 and x.dtype == np.uint8
    if image and x.ndim == 3:
        x = x[..., None]
        test = (test[0][..., None], test[1]) if test else None
    if task == "classification":
        y = y.astype("int64").reshape(-1)
        test = (test[0], test[1].astype("int64").reshape(-1)) if test else None
        classes = int(max(y.max(), test[1].max() if test else 0)) + 1
        names = tuple(str(i) for i in range(classes))
    else:
        y = y.astype("float32").reshape(len(y), -1)
        test = (test[0], test[1].astype("float32").reshape(len(test[1]), -1)) if test else None
        names = None
    return Raw(x, y, task, "image" if image else "tabular", names, test, pixel_max=255.0 if image else None)


def read_image_folder(path: str, image_size: tuple[int, int] = (64, 64), color_mode: str = "rgb") -> Raw:
    """A folder with one sub-folder of images per class (Keras's image loader)."""
    p = _existing(path, "image folder")
    subdirs = sorted(d.name for d in p.iterdir() if d.is_dir())
    if len(subdirs) < 2:
        raise ZooError(f"image folder {str(p)!r} needs one sub-folder per class, and a classification needs at least "
                       f"two classes; found {subdirs}")
    import keras
    import tensorflow as tf

    from zoo.quiet import native_stderr_to_file

    try:
        ds = keras.utils.image_dataset_from_directory(
            p, labels="inferred", label_mode="int", image_size=tuple(image_size), color_mode=color_mode,
            batch_size=None, shuffle=False, verbose=False)
    except Exception as exc:
        raise ZooError(f"cannot read images under {str(p)!r}: {exc}") from None
    xs, ys, failed = [], [], None
    with native_stderr_to_file():  # libjpeg writes its complaints to descriptor 2: the error names the file
        try:
            for image, label in ds.as_numpy_iterator():
                xs.append(image)
                ys.append(label)
        except tf.errors.InvalidArgumentError as exc:  # a file Keras listed but cannot decode
            failed = _undecodable(ds.file_paths[len(xs):], p, exc)
    if failed:
        raise ZooError(failed)
    if not xs:
        raise ZooError(f"image folder {str(p)!r} holds no readable images (jpeg, png, bmp, gif)")
    x = np.clip(np.round(np.stack(xs)), 0, 255).astype("uint8")
    return Raw(x, np.asarray(ys, "int64"), "classification", "image", tuple(ds.class_names), pixel_max=255.0)


def _undecodable(paths: list[str], folder: Path, exc: Exception) -> str:
    """Name the files (from the first one that failed on) that TensorFlow's decoder,
    the one Keras's image loader uses, cannot read."""
    import tensorflow as tf

    bad = []
    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        except tf.errors.InvalidArgumentError as error:
            bad.append((path, _op_message(error)))
    if not bad:
        return f"cannot decode the images under {str(folder)!r}: {_op_message(exc)}"
    (first, why), more = bad[0], len(bad) - 1
    others = f" (and {more} other file{'s' if more > 1 else ''})" if more else ""
    return f"cannot decode image {first!r}{others} ({why}); remove or replace it"


def _op_message(error: Exception) -> str:
    """A TensorFlow op error's own words, without the function and op names around them."""
    text = re.sub(r"\{\{.*?\}\}|\[Op:.*$|\[\[.*?\]\]", "", getattr(error, "message", str(error)).splitlines()[0])
    return " ".join(text.split()).rstrip(".")


def adapt_images(raw: Raw, size: int | tuple[int, int] | None = None, channels: int | None = None) -> Raw:
    """Images resized (bilinear, pixel values kept in their raw range) and/or converted
    grey <-> RGB, for a model that wants another input than the data has. The
    image models can do the same inside the model (hyperparameters input_size and
    channels), which keeps the data as it is; this is the data-side equivalent."""
    if not size and not channels:
        return raw
    if raw.input_kind != "image" or raw.x.ndim != 4:
        raise ZooError(f"resize and channels apply to image datasets (examples of shape HxWxC); this one is "
                       f"{raw.input_kind} with examples of shape {raw.x.shape[1:]}")
    target = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(size or raw.x.shape[1:3])
    if channels not in (None, 0, 1, 3):
        raise ZooError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")

    def convert(x: np.ndarray) -> np.ndarray:
        dtype = x.dtype
        if channels and channels != x.shape[-1]:
            if x.shape[-1] == 1 and channels == 3:
                x = np.repeat(x, 3, axis=-1)
            elif x.shape[-1] == 3 and channels == 1:
                x = (x.astype("float32") @ np.asarray([0.299, 0.587, 0.114], "float32"))[..., None]
            else:
                raise ZooError(f"cannot convert {x.shape[-1]}-channel images to {channels} channels")
        if tuple(x.shape[1:3]) != target:
            import tensorflow as tf

            x = np.concatenate([tf.image.resize(x[i:i + 4096].astype("float32"), target).numpy()
                                for i in range(0, len(x), 4096)])
        if dtype == np.uint8:
            x = np.clip(np.round(x), 0, 255).astype("uint8")
        return x.astype(dtype, copy=False)

    test = (convert(raw.test[0]), raw.test[1]) if raw.test is not None else None
    meta = {**raw.meta, "adapted": {"size": list(target), "channels": channels or int(raw.x.shape[-1])}}
    return Raw(convert(raw.x), raw.y, raw.task, raw.input_kind, raw.class_names, test, raw.pixel_max, meta)


# --- IDX (MNIST-style) ---------------------------------------------------------

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped): big-endian header, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError(f"magic number {data[:4].hex()} is not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if body.size != int(np.prod(shape)):
            raise ValueError(f"header says {shape} but the file holds {body.size} bytes")
    except (OSError, EOFError, ValueError, struct.error) as exc:
        raise ZooError(f"corrupt IDX file {str(path)!r}: {exc}") from None
    return body.reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")):
        if candidate.exists():
            return candidate
    return None


def read_idx_folder(folder: Path, name: str) -> Raw | None:
    """MNIST-style data from its four original IDX files, or None if absent."""
    paths = {split: [_idx_path(folder, s) for s in stems] for split, stems in IDX_FILES.items()}
    if not all(p for pair in paths.values() for p in pair):
        return None
    (xtr, ytr), (xte, yte) = ([read_idx(p) for p in paths[s]] for s in ("train", "test"))
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y):
            raise ZooError(f"{folder}: {split} images ({len(x)}) and labels ({len(y)}) differ in count")
    names = IDX_CLASS_NAMES.get(name, tuple(str(i) for i in range(int(ytr.max()) + 1)))
    return Raw(xtr[..., None], ytr.astype("int64"), "classification", "image", names,
               test=(xte[..., None], yte.astype("int64")), pixel_max=255.0, meta={"source": str(folder)})


# --- CIFAR-10 python batches ----------------------------------------------------

CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


def _cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: rows of 3,072 bytes (1,024 red, green, blue) -> NHWC."""
    import pickle

    try:
        batch = pickle.loads(data, encoding="bytes")
        rows = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype="int64")
        images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as exc:  # a bad pickle raises many kinds of errors
        raise ZooError(f"corrupt CIFAR-10 batch {where!r}: {type(exc).__name__}: {exc}") from None
    if len(images) != len(labels):
        raise ZooError(f"CIFAR-10 batch {where!r} has {len(images)} images but {len(labels)} labels")
    return images, labels


def read_cifar10_folder(folder: Path, name: str = "cifar10") -> Raw | None:
    """CIFAR-10 from its original python version, or None if absent: the folder
    `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta), found in
    `folder` itself or beneath it, or the archive cifar-10-python.tar.gz.

    The batches are Python pickles, the format the dataset is published in; read
    only files you trust.
    """
    files: dict[str, bytes] = {}
    wanted = (*CIFAR10_BATCHES, "test_batch", "batches.meta")
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if all((candidate / f).is_file() for f in wanted[:-1]):
            files = {f: (candidate / f).read_bytes() for f in wanted if (candidate / f).is_file()}
            where = str(candidate)
            break
    else:
        archive = folder / CIFAR10_ARCHIVE
        if not archive.is_file():
            return None
        import tarfile

        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in wanted:
                        files[base] = tar.extractfile(member).read()
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise ZooError(f"cannot read {str(archive)!r}: {exc}") from None
        missing = [f for f in wanted[:-1] if f not in files]
        if missing:
            raise ZooError(f"{str(archive)!r} lacks {', '.join(missing)}; is it the CIFAR-10 python version?")
        where = str(archive)
    parts = [_cifar_batch(files[f], f"{where}/{f}") for f in CIFAR10_BATCHES]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test = _cifar_batch(files["test_batch"], f"{where}/test_batch")
    names = CIFAR10_CLASS_NAMES
    if "batches.meta" in files:
        import pickle

        try:
            meta = pickle.loads(files["batches.meta"], encoding="bytes")
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])
        except Exception as exc:
            raise ZooError(f"corrupt {where}/batches.meta: {type(exc).__name__}: {exc}") from None
    return Raw(x, y, "classification", "image", names, test=test, pixel_max=255.0, meta={"source": where})


CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: readers for a dataset's original files under the data directory, by name
LOCAL_READERS: dict[str, Callable[[Path, str], Raw | None]] = {
    "mnist": read_idx_folder,
    "fashion_mnist": read_idx_folder,
    "cifar10": read_cifar10_folder,
}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The local data directory: the option, else $ZOO_DATA_DIR, else ~/.zoo/data."""
    return Path(explicit or os.environ.get("ZOO_DATA_DIR") or Path.home() / ".zoo" / "data").expanduser()


def read_local(name: str, root: Path) -> Raw | None:
    """A dataset from its original files under `root`: `root/name/` or `root/name.npz`."""
    folder = root / name
    if folder.is_dir() and name in LOCAL_READERS:
        raw = LOCAL_READERS[name](folder, name)
        if raw is not None:
            return raw
    if (root / f"{name}.npz").exists():
        return read_npz(str(root / f"{name}.npz"))
    return None


# --- TensorFlow Datasets -------------------------------------------------------


def read_tfds(name: str, root: Path, download: bool = True) -> Raw:
    """A TFDS dataset as arrays (supervised keys); its test split is kept as test."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=str(root / "tfds"))
    except Exception as exc:  # DatasetNotFoundError and friends
        known = [*BUILTIN, *tfds.list_builders(with_community_datasets=False)]
        raise ZooError(f"unknown dataset {name!r} ({type(exc).__name__})." + did_you_mean(name, known)
                       + " Run `zoo datasets` to see the known ones.") from None
    try:
        if download:
            with _few_download_retries():
                builder.download_and_prepare()
        x, y = _tfds_arrays(builder, "train")
    except Exception as exc:
        raise ZooError(
            f"dataset {name!r} is not in the data directory and TFDS could not get it ({_download_failure(exc)}). "
            f"Put its original files under {root / name}/ ({LOCAL_FILES.get(name, 'or a ' + name + '.npz with x, y')}), "
            f"or prepare it with TFDS on a machine with internet and copy {root / 'tfds'} here; "
            "choose the folder with --data-dir or ZOO_DATA_DIR."
        ) from None
    try:
        test = _tfds_arrays(builder, "test")
    except (ValueError, KeyError):  # no official test split
        test = None
    label = builder.info.features[builder.info.supervised_keys[1]]
    names = tuple(label.names) if hasattr(label, "names") else None
    task = "classification" if names else "regression"
    kind = "text" if x.dtype.kind in "OSU" else ("image" if x.ndim >= 3 else "tabular")
    if task == "classification":
        y = y.astype("int64")
        test = (test[0], test[1].astype("int64")) if test else None
    else:
        y = y.astype("float32").reshape(len(y), -1)
        test = (test[0], test[1].astype("float32").reshape(len(test[1]), -1)) if test else None
    return Raw(x, y, task, kind, names, test,
               pixel_max=255.0 if kind == "image" and x.dtype == np.uint8 else None, meta={"source": "tfds"})


#: what to put in the data directory for the datasets read from their original files
LOCAL_FILES = {
    "mnist": "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
             "t10k-labels-idx1-ubyte.gz",
    "fashion_mnist": "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                     "t10k-labels-idx1-ubyte.gz",
    "cifar10": "cifar-10-python.tar.gz or its cifar-10-batches-py/ folder",
}


def _download_failure(exc: BaseException) -> str:
    """Why a download failed, in a few words: no network names the host it could not reach."""
    import re

    text = str(exc)
    host = re.search(r"host='([^']+)'", text)
    if host and any(k in text for k in ("NameResolution", "Max retries", "Connection", "resolve")):
        return f"no network: could not reach {host.group(1)}"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:120]}" + ("..." if len(first) > 120 else "")


def _tfds_arrays(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, as_supervised=True).batch(4096)
    batches = list(tfds.as_numpy(ds))
    if not batches:
        raise ValueError(f"split {split!r} is empty")
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


@contextlib.contextmanager
def _few_download_retries():
    """TFDS retries a failed download ten times with back-off, which turns "no
    network" into minutes of waiting; one retry is enough to fail clearly."""
    import logging

    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    saved = getattr(downloader, "MAX_RETRIES", None)
    if saved is not None:
        downloader.MAX_RETRIES = 1
    urllib3 = logging.getLogger("urllib3")
    level = urllib3.level
    urllib3.setLevel(logging.ERROR)  # its "Retrying ..." lines: the error says it in one line
    tfds.disable_progress_bar()
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # "Downloading and preparing ...": shown once it worked
            yield
        sys.stdout.write(said.getvalue())
    finally:
        urllib3.setLevel(level)
        if saved is not None:
            downloader.MAX_RETRIES = saved
