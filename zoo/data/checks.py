"""What a dataset must satisfy before anything trains on it: examples in every
split, finite inputs and targets that float32 can hold, and for classification at
least two classes, none empty, each with an example to train on. Each failure is
a ZooError naming the dataset and the real cause. NumPy only (no TensorFlow).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from zoo.errors import ZooError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def nonfinite(a: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    """The index of the first value of a float array that float32 cannot hold, and
    why ("is NaN", "is infinite", "is 1e+308, beyond float32's range"); None when
    every value fits."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return None
    finite = np.isfinite(a)
    if finite.all() and (a.dtype.itemsize <= 4 or np.abs(a).max() <= FLOAT32_MAX):
        return None
    with np.errstate(invalid="ignore"):
        bad = ~finite | (np.abs(a) > FLOAT32_MAX)
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = float(a[index])
    if np.isnan(value):
        return index, "is NaN"
    if np.isinf(value):
        return index, "is infinite"
    return index, f"is {value:g}, beyond float32's range (largest {FLOAT32_MAX:.4g})"


def check_arrays(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """Examples and labels that can be trained on: some, as many labels as examples,
    finite float values within float32's range."""
    if len(x) == 0:
        raise ZooError(f"{where} holds no examples")
    if len(x) != len(y):
        raise ZooError(f"{where}: {len(x)} examples but {len(y)} labels")
    for what, a in (("input", x), ("target", y)):
        bad = nonfinite(a)
        if bad:
            (i, *at), cause = bad
            raise ZooError(f"{where}: the {what} of example {i}{f' (at {at})' if at else ''} {cause}")


def check_inputs(x: np.ndarray, where: str) -> None:
    """Inputs to predict on: refuse NaN, infinite or float32-overflowing values, to
    which a model answers with a made-up class or a meaningless number."""
    bad = nonfinite(x)
    if bad:
        (i, *at), cause = bad
        raise ZooError(f"{where}: the input of example {i}{f' (at {at})' if at else ''} {cause}; the model's answer "
                       "would be meaningless (--allow-nan predicts anyway)")


def check_raw(raw: Any, where: str) -> None:
    """A dataset as read (a zoo.data.sources.Raw), before it is split."""
    check_arrays(raw.x, raw.y, where)
    if raw.test is not None:
        check_arrays(*raw.test, f"{where} (test split)")
    minimum = 2 if raw.test is not None else 3
    if len(raw.x) < minimum:
        raise ZooError(f"{where} has {len(raw.x)} example{'s' if len(raw.x) != 1 else ''}; at least {minimum} are "
                       "needed, one each for training, validation and test")
    if raw.task == "classification":
        _check_classes(raw, where)


def _check_classes(raw: Any, where: str) -> None:
    labels = np.concatenate([raw.y, raw.test[1]]) if raw.test is not None else raw.y
    names = list(raw.class_names or [])
    if labels.min() < 0 or (names and labels.max() >= len(names)):
        raise ZooError(f"{where}: class labels must be 0 to {len(names) - 1}; found {int(labels.min())} to "
                       f"{int(labels.max())}")
    counts = np.bincount(labels, minlength=len(names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        found = f"one: {_name(names, present[0])!r}" if len(present) else "none"
        raise ZooError(f"{where}: a classification needs at least two classes; found {found}")
    empty = [_name(names, i) for i in np.flatnonzero(counts == 0)]
    if empty:
        folder = " (an empty class folder?)" if raw.input_kind == "image" else ""
        raise ZooError(f"{where}: {_some(empty)} {'has' if len(empty) == 1 else 'have'} no examples{folder}; "
                       "remove or fill it")


def check_splits(parts: dict[str, tuple[np.ndarray, np.ndarray]], raw: Any, where: str) -> None:
    """The splits of a classification: every class that is validated or tested on
    has examples to train on (10,000 classes of one example each cannot be learned:
    most land only in validation or test)."""
    if raw.task != "classification":
        return
    trained = set(np.unique(parts["train"][1]).tolist())
    evaluated = set(np.unique(parts["val"][1]).tolist()) | set(np.unique(parts["test"][1]).tolist())
    missing = sorted(evaluated - trained)
    if not missing:
        return
    names = list(raw.class_names or [])
    counts = np.bincount(np.concatenate([p[1] for p in parts.values()]), minlength=len(names))
    needed = 2 if raw.test is not None else 3
    small = int(np.sum((counts > 0) & (counts < needed)))
    listed = ", ".join(repr(_name(names, i)) for i in missing[:3]) + (", ..." if len(missing) > 3 else "")
    raise ZooError(f"{where}: {len(missing):,} of the {int(np.sum(counts > 0)):,} classes ({listed}) "
                   f"{'has' if len(missing) == 1 else 'have'} examples to validate or test on but none to train on; "
                   f"{small:,} class{'es have' if small != 1 else ' has'} fewer than {needed} examples, too few to "
                   "appear in every split. Give the rare classes more examples or leave them out")


def note_limited(train_labels: np.ndarray, raw: Any, limit: int) -> None:
    """`limit` cut the training split: refuse one class, say which classes it left out."""
    if raw.task != "classification":
        return
    kept = np.unique(train_labels)
    if len(kept) < 2:
        raise ZooError(f"limit {limit} leaves {len(kept)} class in the training split; a classification needs two")
    names = list(raw.class_names or [])
    left_out = sorted(set(range(len(names))) - set(kept.tolist()))
    if left_out:
        print(f"zoo: note: limit {limit} leaves {_some([_name(names, i) for i in left_out])} out of the training "
              "split", file=sys.stderr)


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else str(index)


def _some(names: list[str], shown: int = 3) -> str:
    """'class 'a'', 'classes 'a', 'b'' or '9,998 classes ('a', 'b', 'c', ...)'."""
    if len(names) == 1:
        return f"class {names[0]!r}"
    listed = ", ".join(repr(n) for n in names[:shown])
    return f"classes {listed}" if len(names) <= shown else f"{len(names):,} classes ({listed}, ...)"
