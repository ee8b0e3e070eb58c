"""Boundary IoU (Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation
Evaluation", CVPR 2021): the IoU of the mask pixels within distance d of each mask's contour, d a
fraction of the image diagonal. Unlike IoU it is not dominated by the interior of large objects,
so it shows how well the outlines are placed. Written here (OpenCV erosions, as the authors' own
code) because neither Keras nor MLflow provides it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

DILATION_RATIO = 0.02  # the paper's default: 2 % of the image diagonal


def boundary_distance(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """d in pixels for an image of this size (at least 1)."""
    return max(1, round(ratio * math.hypot(height, width)))


def boundary_region(mask: np.ndarray, distance: int) -> np.ndarray:
    """The pixels of binary ``mask`` within ``distance`` of its contour: the mask minus its erosion,
    the image border counting as contour (as in the authors' code, whose ``distance`` iterations of
    a 3x3 erosion are one erosion by a square of side 2 * distance + 1, twice as fast)."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * distance + 1, 2 * distance + 1))
    eroded = cv2.erode(padded, square)[1:-1, 1:-1]
    return mask.astype(bool) & ~eroded.astype(bool)


class BoundaryIoU:
    """Accumulates each class's boundary intersection and union over a split, like the confusion
    matrix does for IoU; pixels whose ground truth is ``ignore_index`` are not counted."""

    def __init__(self, num_classes: int, ignore_index: int = 255, ratio: float = DILATION_RATIO):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.ratio = float(ratio)
        self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        self.union = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, target: np.ndarray, prediction: np.ndarray) -> None:
        """Add one image: (H, W) class indices of the ground truth and the prediction."""
        distance = boundary_distance(*target.shape, self.ratio)
        valid = target != self.ignore_index
        counts = np.bincount(target[valid], minlength=self.num_classes)[: self.num_classes]
        counts += np.bincount(prediction[valid], minlength=self.num_classes)[: self.num_classes]
        for label in np.flatnonzero(counts):
            truth = boundary_region(target == label, distance) & valid
            predicted = boundary_region(prediction == label, distance) & valid
            self.intersection[label] += np.count_nonzero(truth & predicted)
            self.union[label] += np.count_nonzero(truth | predicted)

    def scores(self, class_names: list[str]) -> dict[str, float]:
        """``boundary_miou`` (mean over classes with any boundary pixel) and ``boundary_iou_<class>``
        (NaN for a class with none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(self.union > 0, self.intersection / self.union, np.nan)
        scores = {"boundary_miou": float(np.nanmean(iou)) if np.any(self.union > 0) else float("nan")}
        scores.update({f"boundary_iou_{name}": float(value) for name, value in zip(class_names, iou, strict=True)})
        return scores
