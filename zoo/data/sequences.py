"""Sequence data: sliding windows over time series, and text vocabularies.

    load("sines")                                   a noisy multi-frequency signal, offline
    load("series:prices.csv?column=close&window=30&horizon=5&stride=1")
    load("series:sines?window=64&horizon=8&targets=sequence")

A series becomes supervised examples by sliding a window over it (numpy's
`sliding_window_view`, equivalent to keras.utils.timeseries_dataset_from_array
without importing TensorFlow in the data path):

- `targets=last` (many-to-one): x = `window` steps of every column, y = the
  target column's next `horizon` values, shape (n, horizon);
- `targets=sequence` (many-to-many): y[t] = the target column `horizon` steps
  after x[t], for every step of the window, shape (n, window).

Windows stay in time order (`Raw.meta["ordered"]`), so the train/validation/test
split is chronological: the test windows are the latest ones, and no future value
leaks into training. The windowing is recorded in DataSpec.preprocessing
("windowing"), which is how the naive last-value baseline is computed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from zoo.data.sources import Raw
from zoo.errors import ZooError

WINDOW_DEFAULTS: Mapping[str, Any] = {"window": 48, "horizon": 1, "stride": 1, "targets": "last"}
TARGETS = ("last", "sequence")
MIN_WINDOWS = 20  # enough to split into train, validation and test


def sines_signal(n: int = 4000, seed: int = 0) -> np.ndarray:
    """A noisy sum of three sines with incommensurate periods, a slow trend-free drift
    and an amplitude modulation: forecastable, but not by repeating the last value."""
    if n < 1:
        raise ZooError(f"the sines series needs a positive length, got {n}")
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype="float64")
    signal = (np.sin(2 * np.pi * t / 23.0)
              + 0.6 * np.sin(2 * np.pi * t / 9.7 + 1.0)
              + 0.4 * (1 + 0.5 * np.sin(2 * np.pi * t / 310.0)) * np.sin(2 * np.pi * t / 4.3 + 2.0))
    drift = np.cumsum(rng.normal(0, 0.02, n))
    span = min(200, n)
    drift -= np.convolve(drift, np.ones(span) / span, mode="same")  # keep it stationary
    noise = rng.normal(0, 0.15, n)
    return (signal + drift + noise).astype("float32")


def windows(series: np.ndarray, *, window: int, horizon: int = 1, stride: int = 1, targets: str = "last",
            target_column: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Supervised (x, y) pairs from a (time, features) or (time,) array; see the module doc."""
    series = np.asarray(series, dtype="float32")
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2:
        raise ZooError(f"a time series must be 1-D or (time, features), got shape {series.shape}")
    window, horizon, stride = int(window), int(horizon), int(stride)
    if window < 1 or horizon < 1 or stride < 1:
        raise ZooError(f"window, horizon and stride must be >= 1, got {window}, {horizon}, {stride}")
    if targets not in TARGETS:
        raise ZooError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    if not np.all(np.isfinite(series)):
        raise ZooError("the time series contains NaN or infinite values; fill or drop them first")
    count = (len(series) - window - horizon) // stride + 1  # both kinds need `horizon` steps after a window
    if count < 1:
        raise ZooError(f"a series of {len(series)} steps is too short for windows of {window} + {horizon} steps; "
                       "use a longer series or a shorter window")
    starts = np.arange(count) * stride
    steps = np.arange(window)
    x = series[starts[:, None] + steps[None, :]]  # (n, window, features)
    col = series[:, target_column]
    if targets == "last":
        y = col[starts[:, None] + window + np.arange(horizon)[None, :]]  # (n, horizon)
    else:
        y = col[starts[:, None] + steps[None, :] + horizon]  # (n, window)
    return x.astype("float32"), y.astype("float32")


def parse_options(query: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Window options from a URI query (`window=32&horizon=4`) over the defaults."""
    options = dict(WINDOW_DEFAULTS)
    for key, value in [*parse_qsl(query, keep_blank_values=True), *(overrides or {}).items()]:
        if key in ("window", "horizon", "stride", "length", "seed"):
            try:
                options[key] = int(value)
            except ValueError:
                raise ZooError(f"series option {key} must be a whole number, got {value!r}") from None
        elif key in ("targets", "column"):
            options[key] = str(value)
        else:
            raise ZooError(f"unknown series option {key!r}; use window, horizon, stride, targets, column "
                           "(and length, seed for the built-in sines)")
    return options


def _raw(x: np.ndarray, y: np.ndarray, options: Mapping[str, Any], columns: list[str], target: str,
         source: str) -> Raw:
    if len(x) < MIN_WINDOWS:
        raise ZooError(f"{source}: only {len(x)} windows of {options['window']} + {options['horizon']} steps; a dataset "
                       f"needs at least {MIN_WINDOWS} to split; use a longer series or a shorter window")
    windowing = {"window": int(options["window"]), "horizon": int(options["horizon"]),
                 "stride": int(options["stride"]), "targets": options["targets"], "columns": columns,
                 "target": target, "target_index": columns.index(target)}
    return Raw(x, y, "regression", "sequence", meta={"ordered": True, "windowing": windowing, "source": source})


def sines(query: str = "") -> Raw:
    """The built-in forecasting set: windows over `sines_signal` (default 48 -> next value)."""
    options = parse_options(query)
    if "column" in options:
        raise ZooError("the built-in sines series has one column; drop the column option")
    series = sines_signal(int(options.get("length", 4000)), int(options.get("seed", 0)))
    x, y = windows(series, window=options["window"], horizon=options["horizon"], stride=options["stride"],
                   targets=options["targets"])
    return _raw(x, y, options, ["value"], "value", "generated")


def read_series(uri: str, target: str | None = None) -> Raw:
    """`series:PATH.csv?column=NAME&window=..&horizon=..&stride=..&targets=last|sequence`.

    Every numeric column of the CSV is an input feature; `column` (or --target) is
    the one forecast (default: the last column). `series:sines?...` is the built-in signal.
    """
    path, _, query = uri.partition("?")
    options = parse_options(query)
    if path == "sines" and not Path(path).exists():
        return sines(query)
    p = Path(path).expanduser()
    if not p.exists():
        raise ZooError(f"series file {str(p)!r} does not exist")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"cannot read CSV {str(p)!r}: {exc}") from None
    if len(rows) < 2:
        raise ZooError(f"CSV {str(p)!r} needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    numeric = [j for j in range(len(header)) if _numeric_column(body, j)]
    if not numeric:
        raise ZooError(f"CSV {str(p)!r} has no numeric column")
    column = options.pop("column", None) or target or header[numeric[-1]]
    if column not in header:
        raise ZooError(f"CSV {str(p)!r} has no column {column!r}; columns: {', '.join(header)}")
    if header.index(column) not in numeric:
        raise ZooError(f"column {column!r} of {str(p)!r} is not numeric; a forecast target must be")
    series = np.asarray([[float(r[j]) for j in numeric] for r in body], dtype="float32")
    columns = [header[j] for j in numeric]
    x, y = windows(series, window=options["window"], horizon=options["horizon"], stride=options["stride"],
                   targets=options["targets"], target_column=columns.index(column))
    return _raw(x, y, options, columns, column, str(p))


def _numeric_column(body: list[list[str]], j: int) -> bool:
    try:
        for r in body:
            float(r[j])
        return True
    except (ValueError, IndexError):
        return False


def last_value_forecast(windowing: Mapping[str, Any], preprocessing: Mapping[str, Any], x: np.ndarray,
                        horizon: int) -> np.ndarray:
    """The naive forecast "the next values equal the last one seen" for windows `x`
    (preprocessed model input; the raw target column is recovered from the recorded
    statistics); for many-to-many targets the forecast of step t is the input at step t."""
    col = int(windowing["target_index"])
    raw = np.asarray(x, dtype="float64")
    if preprocessing.get("type") == "standardize":
        raw = raw * np.asarray(preprocessing["std"]) + np.asarray(preprocessing["mean"])
    raw = raw.reshape(len(x), int(windowing["window"]), -1)[..., col]
    return np.repeat(raw[:, -1:], horizon, axis=1) if windowing["targets"] == "last" else raw


def last_value_baseline(windowing: Mapping[str, Any], preprocessing: Mapping[str, Any], x: np.ndarray,
                        y: np.ndarray) -> dict[str, float]:
    """Error of the naive forecast "the next values equal the last one seen" on (x, y).

    `x` is preprocessed (standardised) model input; the raw target column is
    recovered from the recorded statistics. For many-to-many targets the naive
    forecast of step t is the input at step t.
    """
    err = np.asarray(y, dtype="float64") - last_value_forecast(windowing, preprocessing, x, y.shape[1])
    return {"baseline_test_mse": float(np.mean(err ** 2)), "baseline_test_mae": float(np.mean(np.abs(err)))}


def text_vocabulary(texts: np.ndarray, max_tokens: int = 20000) -> list[str]:
    """The training split's vocabulary, most frequent first, as Keras's TextVectorization
    learns it (lower case, punctuation stripped, split on whitespace); without the
    padding and out-of-vocabulary tokens, which the layer adds back."""
    import keras

    layer = keras.layers.TextVectorization(max_tokens=max_tokens)
    layer.adapt(np.asarray([t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in texts]),
                batch_size=256)
    return [str(w) for w in layer.get_vocabulary()[2:]]
