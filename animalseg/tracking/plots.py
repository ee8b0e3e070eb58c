"""PNG figures of a run: training curves, per-class IoU, confusion matrix, example predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_curves(history: dict[str, Sequence[float]], path: Path) -> Path:
    """Losses (train vs val), val mIoU / pixel accuracy and the learning rate per epoch."""
    panels = [
        ("loss", [k for k in ("loss", "val_loss") if k in history]),
        ("score", [k for k in ("val_miou", "val_pixel_accuracy") if k in history]),
        ("learning rate", [k for k in ("lr",) if k in history]),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for axis, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            values = history[key]
            axis.plot(range(1, len(values) + 1), values, marker="o", label=key)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if keys:
            axis.legend()
    return _save(figure, path)


def plot_class_iou(iou: dict[str, float], path: Path) -> Path:
    """A bar per class (absent classes shown empty)."""
    figure, axis = plt.subplots(figsize=(max(5, 0.8 * len(iou)), 3.5))
    names = list(iou)
    values = [0.0 if np.isnan(v) else v for v in iou.values()]
    bars = axis.bar(names, values, color="tab:blue")
    for bar, value in zip(bars, iou.values(), strict=True):
        label = "n/a" if np.isnan(value) else f"{value:.2f}"
        axis.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, ha="center", va="bottom")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("IoU")
    axis.tick_params(axis="x", rotation=45)
    return _save(figure, path)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix (each ground-truth class sums to 1)."""
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    size = max(4, 0.7 * len(class_names))
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("ground truth")
    if len(class_names) <= 25:
        for (i, j), value in np.ndenumerate(normalised):
            axis.text(
                j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.5 else "black", fontsize=7
            )
    figure.colorbar(image, ax=axis)
    return _save(figure, path)


def plot_examples(examples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], colorize, path: Path) -> Path:
    """Rows of (image, ground truth, prediction), masks in the dataset's colours."""
    figure, axes = plt.subplots(len(examples), 3, figsize=(9, 3 * len(examples)), squeeze=False)
    for row, (image, target, prediction) in enumerate(examples):
        for axis, picture, title in zip(
            axes[row],
            (image, colorize(target), colorize(prediction)),
            ("image", "ground truth", "prediction"),
            strict=True,
        ):
            axis.imshow(picture)
            axis.set_title(title)
            axis.axis("off")
    return _save(figure, path)
