"""What an image classifier got wrong, written into its run directory after training:

    confusion_matrix.png / .json   test-set confusion matrix (rows: true, columns: predicted)
    misclassified.png              a grid of misclassified test images, "true -> predicted"
    filters.png                    the first convolutional layer's filters

Registered on zoo.training.REPORTS; it does nothing for other models or data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: at most this many misclassified images and first-layer filters are drawn
MAX_IMAGES = 36
MAX_FILTERS = 64


def is_image_classifier(run: Any) -> bool:
    spec = run.data_spec
    return (run.config.get("task") == "classification" and spec.input_kind == "image"
            and run.model is not None and run.dataset is not None)


def probabilities(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, one column per class (two for a sigmoid output)."""
    from zoo.data import predict

    p = np.asarray(predict(model, x, batch_size)).astype("float64")
    return np.concatenate([1 - p, p], axis=-1) if p.shape[-1] == 1 else p


def predictions(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices (sigmoid outputs thresholded at 0.5)."""
    return probabilities(model, x, batch_size).argmax(axis=-1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(m, (y_true.astype("int64"), y_pred.astype("int64")), 1)
    return m


def image_classifier_report(run: Any) -> None:
    """Write the confusion matrix, misclassified grid and first-layer filters."""
    if not is_image_classifier(run):
        return
    x, y = run.dataset.arrays["test"]
    names = list(run.data_spec.class_names or [str(i) for i in range(int(run.data_spec.num_classes or 2))])
    probs = probabilities(run.model, x)
    pred = probs.argmax(axis=-1)
    matrix = confusion_matrix(y, pred, len(names))
    write_confusion(matrix, names, run.dir)
    write_misclassified(x, y, pred, names, run.dir / "misclassified.png", run.data_spec.value_range,
                        confidence=probs.max(axis=-1))
    write_filters(run.model, run.dir / "filters.png")


def write_confusion(matrix: np.ndarray, names: list[str], run_dir: Path) -> None:
    from zoo.plots import plt, save_figure

    total = int(matrix.sum())
    data = {"labels": names, "matrix": matrix.tolist(), "rows": "true class", "columns": "predicted class",
            "accuracy": float(np.trace(matrix) / total) if total else None,
            "per_class_recall": [float(r[i] / r.sum()) if r.sum() else None for i, r in enumerate(matrix)]}
    (run_dir / "confusion_matrix.json").write_text(json.dumps(data, indent=2))
    n = len(names)
    side = min(12, 2.5 + 0.55 * n)
    # rows normalised (the share of each true class that went where), the diagonal apart:
    # the colour scale is the errors', so a 3% confusion shows beside 97% correct
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    errors = np.where(np.eye(n, dtype=bool), np.nan, share)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(float(np.nanmax(errors)) if n > 1 else 0.0, 1e-9))
    ax.imshow(np.where(np.eye(n, dtype=bool), share, np.nan), cmap="Greys", vmin=0, vmax=2)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class predicted as this (errors)")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j] or i == j:
                    ax.text(j, i, f"{matrix[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="black")
    ax.set_title((f"test confusion matrix (accuracy {data['accuracy']:.3f}); grey: correct, red: errors"
                  if total else "test confusion matrix"), fontsize=9)
    save_figure(fig, run_dir / "confusion_matrix.png")


def _displayable(image: np.ndarray, value_range) -> np.ndarray:
    img = image.astype("float32")
    if value_range:
        lo, hi = value_range
        img = (img - lo) / ((hi - lo) or 1.0)
    else:  # standardised pixels: stretch to [0, 1]
        img = (img - img.min()) / ((img.max() - img.min()) or 1.0)
    img = np.clip(img, 0, 1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    elif img.ndim == 3 and img.shape[-1] != 3:
        img = img.mean(axis=-1)
    return img


def write_misclassified(x: np.ndarray, y: np.ndarray, pred: np.ndarray, names: list[str], path: Path,
                        value_range=None, confidence: np.ndarray | None = None) -> int:
    """A grid of up to MAX_IMAGES wrong test predictions, the most confident
    mistakes first, each with the model's confidence; returns how many are wrong."""
    from zoo.plots import plt, save_figure

    wrong = np.flatnonzero(pred != y)
    if confidence is not None:
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    shown = wrong[:MAX_IMAGES]
    cols = max(1, min(6, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        ax.imshow(_displayable(x[i], value_range), cmap="gray")
        sure = f" ({confidence[i]:.0%})" if confidence is not None else ""
        ax.set_title(f"true {names[int(y[i])]}\npred {names[int(pred[i])]}{sure}", fontsize=8)
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(f"misclassified test images: {len(wrong)} of {len(y)}", fontsize=10)
    save_figure(fig, path)
    return int(len(wrong))


def first_conv_kernel(model) -> tuple[str, np.ndarray] | None:
    """(layer name, kernel kh x kw x in x out) of the first trainable 2-D convolution."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = first_conv_kernel(layer)
            if found:
                return found
        kernel = getattr(layer, "kernel", None)
        if layer.trainable and kernel is not None and len(kernel.shape) == 4:
            return layer.name, np.asarray(keras.ops.convert_to_numpy(kernel))
    return None


def write_filters(model, path: Path) -> bool:
    """The first convolutional layer's filters as small images (RGB when the
    layer sees three channels, else averaged over its input channels)."""
    found = first_conv_kernel(model)
    if found is None:
        return False
    from zoo.plots import plt, save_figure

    name, kernel = found
    count = min(kernel.shape[-1], MAX_FILTERS)
    cols = min(8, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    rgb = kernel.shape[2] == 3
    bound = float(np.abs(kernel).max()) or 1.0
    image = None
    for k, ax in zip(range(count), axes.flat):
        f = kernel[..., k]
        if rgb:  # colour filters: one shared scale, 0.5 grey is a zero weight
            ax.imshow(np.clip(0.5 + 0.5 * f / bound, 0, 1), interpolation="nearest")
        else:  # one diverging scale for all filters: blue negative, red positive weights
            image = ax.imshow(f.mean(axis=-1), cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), fraction=0.02, pad=0.02, label="weight")
    fig.subplots_adjust(top=0.88)
    fig.suptitle(f"first convolution {name!r}: {kernel.shape[-1]} filters {kernel.shape[0]}x{kernel.shape[1]}",
                 fontsize=9)
    save_figure(fig, path, tight=False)
    return True


# --- the lectures' pictures for small problems --------------------------------------------------


def decision_boundary_report(run: Any) -> None:
    """decision_boundary.png for a classifier of two raw features (xor, spirals,
    any 2-column CSV): the predicted class over the plane (shaded by confidence),
    the training points faint and the test points outlined."""
    spec = run.data_spec
    if (run.config.get("task") != "classification" or spec.input_kind != "tabular"
            or tuple(spec.input_shape) != (2,) or run.model is None or run.dataset is None):
        return
    from zoo.export import raw_from_preprocessed
    from zoo.plots import plt, save_figure

    (x, y), (xt, yt) = run.dataset.arrays["train"], run.dataset.arrays["test"]
    raw, raw_test = (raw_from_preprocessed(spec.preprocessing, a) for a in (x, xt))
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    pad = 0.08 * (hi - lo)
    g0, g1 = np.meshgrid(*(np.linspace(lo[i] - pad[i], hi[i] + pad[i], 200) for i in (0, 1)))
    probs = np.asarray(run.predict(np.c_[g0.ravel(), g1.ravel()])["probabilities"])
    pred, sure = probs.argmax(axis=1).reshape(g0.shape), probs.max(axis=1).reshape(g0.shape)
    names = list(spec.class_names or [str(i) for i in range(probs.shape[1])])
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    shade = cmap(pred % 10)
    shade[..., 3] = 0.15 + 0.45 * (sure - sure.min()) / ((sure.max() - sure.min()) or 1.0)
    ax.imshow(shade, origin="lower", extent=(g0.min(), g0.max(), g1.min(), g1.max()), aspect="auto")
    ax.contour(g0, g1, pred, levels=np.arange(probs.shape[1]) + 0.5, colors="k", linewidths=0.8)
    for k, name in enumerate(names):
        ax.scatter(*raw[y == k].T, s=6, color=cmap(k % 10), alpha=0.35)
        ax.scatter(*raw_test[yt == k].T, s=22, color=cmap(k % 10), edgecolors="k", linewidths=0.6, label=name)
    features = spec.preprocessing.get("columns") or ["feature 1", "feature 2"]
    ax.set_xlabel(features[0])
    ax.set_ylabel(features[1])
    accuracy = run.metrics.get("test_accuracy")
    ax.set_title(f"{run.dir.name}: decision boundary" + (f" (test accuracy {accuracy:.3f})" if accuracy else "")
                 + "\nshade: confidence; outlined: test points", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    save_figure(fig, run.dir / "decision_boundary.png")


def forecast_report(run: Any) -> None:
    """forecast.png for a forecasting run: the test windows' true next value, the
    model's forecast and the last-value forecast, in time order."""
    windowing = run.data_spec.preprocessing.get("windowing")
    if not windowing or run.model is None or run.dataset is None:
        return
    from zoo.data import predict
    from zoo.data.sequences import last_value_forecast
    from zoo.plots import plt, save_figure

    xt, yt = run.dataset.arrays["test"]
    n = min(len(xt), 300)
    xt, yt = xt[:n], np.asarray(yt[:n], dtype="float64")
    pred = np.asarray(predict(run.model, xt), dtype="float64").reshape(n, -1)
    naive = last_value_forecast(windowing, run.data_spec.preprocessing, xt, yt.reshape(n, -1).shape[1])
    step = -1  # the last forecast step (the horizon's)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    t = np.arange(n)
    ax.plot(t, yt.reshape(n, -1)[:, step], color="k", linewidth=1.2, label="truth")
    ax.plot(t, pred[:, step], color="C0", linewidth=1.2,
            label=f"model (test mae {run.metrics.get('test_mae', float('nan')):.3g})")
    ax.plot(t, naive[:, step], color="C3", linewidth=0.9, linestyle="--",
            label=f"last value seen (mae {run.metrics.get('baseline_test_mae', float('nan')):.3g})")
    ax.set_xlabel("test window (time order)")
    ax.set_ylabel(f"value {windowing.get('horizon', 1)} step(s) ahead")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{run.dir.name}: forecast against truth (first {n} test windows)", fontsize=9)
    save_figure(fig, run.dir / "forecast.png")
