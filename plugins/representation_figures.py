"""Figures of learned representations written into run directories.

For families that learn features (RBM, DBN, autoencoders) a run directory gets:
    filters.png          first-layer weights as an image grid (image data)
    reconstructions.png  test images, original above reconstructed
    codes.png            the test codes in 2-D (PCA when wider), coloured by class

A family registers a function `outputs(model, x) -> Outputs` with `register`;
one hook in zoo.training.REPORTS draws whatever the outputs hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: test examples drawn in the figures (codes scatter, reconstructions)
MAX_EXAMPLES = 2000


@dataclass
class Outputs:
    """What a model shows of itself on examples x: all optional."""

    filters: np.ndarray | None = None  # (n_inputs, n_filters)
    reconstructions: np.ndarray | None = None  # same shape as x
    corrupted: np.ndarray | None = None  # the noisy inputs a denoising model reconstructed from
    codes: np.ndarray | None = None  # (n, code_size)


#: family -> outputs(model, x)
SOURCES: dict[str, Callable[[Any, np.ndarray], Outputs]] = {}


def register(family: str, outputs: Callable[[Any, np.ndarray], Outputs]) -> None:
    """Have runs of `family` write the representation figures; hooks zoo.training once."""
    from zoo.training import REPORTS as reports

    SOURCES[family] = outputs
    if report not in reports:
        reports.append(report)


def _as_image(flat: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    img = flat.reshape(image_shape)
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def filters_grid(kernel: np.ndarray, image_shape: tuple[int, ...], path: Path, max_filters: int = 100,
                 title: str = "filters") -> Path:
    """Each column of `kernel` (one hidden unit's weights) as an image, each scaled to its own range."""
    from zoo.plots import plt, save_figure
    n = min(kernel.shape[1], max_filters)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            w = kernel[:, i]
            w = (w - w.min()) / (np.ptp(w) + 1e-12)
            ax.imshow(_as_image(w, image_shape), cmap="gray", interpolation="nearest")
    fig.suptitle(title)
    save_figure(fig, path, tight=False)
    return path


def reconstructions_grid(x: np.ndarray, x_rec: np.ndarray, image_shape: tuple[int, ...], path: Path,
                         n: int = 10, title: str = "original (top) vs reconstruction (bottom)",
                         corrupted: np.ndarray | None = None) -> Path:
    """Test images above their reconstructions; for a denoising autoencoder the
    corrupted inputs it was given sit between them."""
    from zoo.plots import plt, save_figure
    n = min(n, len(x))
    rows = [x] + ([corrupted] if corrupted is not None else []) + [x_rec]
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.0, 1.1 * len(rows)), squeeze=False)
    lo, hi = float(np.min(x[:n])), float(np.max(x[:n]))
    for i in range(n):
        for row, data in enumerate(rows):
            ax = axes[row, i]
            ax.axis("off")
            ax.imshow(np.clip(_as_image(np.asarray(data[i]).reshape(-1), image_shape), lo, hi), cmap="gray",
                      vmin=lo, vmax=hi, interpolation="nearest")
    if corrupted is not None:
        title = "original (top), corrupted input (middle), reconstruction (bottom)"
    fig.suptitle(title)
    save_figure(fig, path, tight=False)
    return path


def codes_scatter(codes: np.ndarray, path: Path, labels: np.ndarray | None = None,
                  class_names: tuple[str, ...] | None = None, title: str = "codes") -> Path:
    """Codes in 2-D: as they are when 2-wide, else their first two principal components."""
    from zoo.plots import plt, save_figure
    codes = np.asarray(codes, "float64").reshape(len(codes), -1)
    axis_names = ("code 1", "code 2")
    if codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        codes = PCA(2, random_state=0).fit_transform(codes)
        axis_names = ("PC 1", "PC 2")
    elif codes.shape[1] == 1:
        codes = np.concatenate([codes, np.zeros_like(codes)], axis=1)
    fig, ax = plt.subplots(figsize=(6, 5))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        for c in np.unique(labels):
            sel = labels == c
            name = class_names[int(c)] if class_names and int(c) < len(class_names) else str(c)
            ax.scatter(codes[sel, 0], codes[sel, 1], s=6, label=name, alpha=0.7)
        ax.legend(markerscale=2, fontsize=7, loc="best")
    else:
        ax.scatter(codes[:, 0], codes[:, 1], s=6, alpha=0.7)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title)
    save_figure(fig, path)
    return path


def write_figures(outputs: Outputs, run_dir: Path, x: np.ndarray, labels: np.ndarray | None, data_spec,
                  prefix: str = "") -> list[Path]:
    """Draw what `outputs` holds into `run_dir`; image figures only for image data."""
    written = []
    image_shape = tuple(data_spec.input_shape) if data_spec.input_kind == "image" else None
    title = data_spec.name
    if outputs.filters is not None and image_shape is not None:
        written.append(filters_grid(np.asarray(outputs.filters), image_shape, run_dir / f"{prefix}filters.png",
                                    title=f"first-layer filters ({title})"))
    if outputs.reconstructions is not None and image_shape is not None:
        written.append(reconstructions_grid(x, np.asarray(outputs.reconstructions), image_shape,
                                            run_dir / f"{prefix}reconstructions.png", corrupted=outputs.corrupted))
    if outputs.codes is not None:
        with_labels = labels is not None and data_spec.num_classes
        written.append(codes_scatter(outputs.codes, run_dir / f"{prefix}codes.png",
                                     labels if with_labels else None, data_spec.class_names,
                                     title=f"test codes ({title})"))
    return written


def report(run) -> None:
    """zoo.training.REPORTS hook: the representation figures of a finished run."""
    source = SOURCES.get(run.config.get("family"))
    if source is None or run.model is None or run.dataset is None:
        return
    x, y = run.dataset.arrays["test"]
    x, y = x[:MAX_EXAMPLES], y[:MAX_EXAMPLES]
    write_figures(source(run.model, x), Path(run.dir), x, y, run.data_spec)
