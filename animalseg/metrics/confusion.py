"""One confusion matrix → mIoU, pixel accuracy and per-class IoU."""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    target: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """(K, K) int64 counts, rows = ground truth, columns = prediction; ignore pixels skipped."""
    target = np.asarray(target).reshape(-1).astype(np.int64)
    prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
    valid = target != ignore_index
    if np.any(target[valid] >= num_classes) or np.any(target[valid] < 0):
        raise ValueError(f"target values outside 0..{num_classes - 1} (and not {ignore_index})")
    codes = target[valid] * num_classes + prediction[valid]
    return np.bincount(codes, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for a class with no ground-truth and no predicted pixel."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def segmentation_scores(confusion: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """``miou`` (mean over classes present in ground truth or prediction), ``pixel_accuracy`` and
    ``iou_<class>`` per class (NaN where the class is absent from both)."""
    iou = per_class_iou(confusion)
    total = float(np.sum(confusion))
    scores = {
        "miou": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan"),
        "pixel_accuracy": float(np.trace(confusion) / total) if total else float("nan"),
    }
    scores.update({f"iou_{name}": float(value) for name, value in zip(class_names, iou, strict=True)})
    return scores
