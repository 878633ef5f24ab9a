"""Figures written into run directories (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curves(history: dict[str, list[float]], path: Path, title: str = "", *, kept_epoch: int | None = None,
                    baselines: dict[str, float] | None = None, labels: dict[str, str] | None = None) -> Path:
    """Loss and the first metric per epoch, training vs validation, on whole-number
    epochs; the epoch the model kept marked, and the baseline that ignores the
    inputs drawn where one is known (`baselines`: metric -> value)."""
    from matplotlib.ticker import MaxNLocator

    metrics = [k for k in history if not k.startswith("val_") and k not in ("learning_rate",)]
    metrics = ["loss"] + [k for k in metrics if k != "loss" and history[k] != history["loss"]][:1]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        epochs = range(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", markersize=3, label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", markersize=3, label="validation")
        if kept_epoch:
            ax.axvline(kept_epoch, color="0.4", linestyle=":", linewidth=1, label=f"kept: epoch {kept_epoch}")
        if baselines and key in baselines:
            ax.axhline(baselines[key], color="C3", linestyle="--", linewidth=1, label="baseline (ignores inputs)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel((labels or {}).get(key, key))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def save_figure(fig, path: Path, *, tight: bool = True) -> Path:
    """Lay out, write as PNG (100 dpi) and close a figure: every run-directory plot ends here."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def comparison(histories: dict[str, dict[str, list[float]]], metric: str, kept: dict[str, int | None], path: Path,
               title: str = "") -> Path:
    """Several runs' `metric` per epoch on one plot: validation solid, training
    dashed in the same colour, a dot on the epoch each model kept."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, (label, history) in enumerate(histories.items()):
        colour = f"C{i % 10}"
        val, train = history.get(f"val_{metric}"), history.get(metric)
        if train:
            ax.plot(range(1, len(train) + 1), train, "--", color=colour, alpha=0.6, linewidth=1)
        if val:
            ax.plot(range(1, len(val) + 1), val, "-", color=colour, label=label, linewidth=1.6)
            epoch = kept.get(label)
            if epoch and epoch <= len(val):
                ax.plot(epoch, val[epoch - 1], "o", color=colour, markersize=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric + " (validation solid, training dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
