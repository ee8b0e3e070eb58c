"""One confusion matrix → mIoU, pixel accuracy, and per class (and their mean) IoU, Dice/F1,
precision and recall."""

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
    """``miou`` (mean over classes present in ground truth or prediction), ``pixel_accuracy``, and
    ``iou_<class>``, ``dice_<class>`` (= F1), ``precision_<class>``, ``recall_<class>`` with their
    means ``mdice``, ``mprecision``, ``mrecall`` over the same classes. A class absent from both
    is NaN; a present class never predicted has precision 0 (and one absent from the ground truth
    recall 0), as its IoU is 0."""
    confusion = np.asarray(confusion, dtype=np.float64)
    iou = per_class_iou(confusion)
    present = ~np.isnan(iou)
    hits, predicted, actual = np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = {
            "iou": iou,
            "dice": np.where(present, 2 * hits / (predicted + actual), np.nan),
            "precision": np.where(present, np.where(predicted > 0, hits / predicted, 0.0), np.nan),
            "recall": np.where(present, np.where(actual > 0, hits / actual, 0.0), np.nan),
        }
    total = float(np.sum(confusion))
    scores = {"pixel_accuracy": float(np.trace(confusion) / total) if total else float("nan")}
    for kind, values in per_class.items():
        scores[f"m{kind}"] = float(np.nanmean(values)) if present.any() else float("nan")
        scores.update({f"{kind}_{name}": float(value) for name, value in zip(class_names, values, strict=True)})
    return scores
