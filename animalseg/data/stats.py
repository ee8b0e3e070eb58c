"""Per-class pixel frequencies of a split and the class weights derived from them."""

from __future__ import annotations

import numpy as np

from animalseg.data.dataset import SegmentationDataset

WEIGHTING_METHODS = ("median", "inverse")


def pixel_counts(dataset: SegmentationDataset, split: str = "train") -> np.ndarray:
    """Pixels of each class over the WHOLE split (ignore pixels not counted)."""
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for index in range(len(dataset.ids(split))):
        mask = dataset.load(split, index)[1]
        counts += np.bincount(mask[mask != dataset.ignore_index].ravel(), minlength=dataset.num_classes)[
            : dataset.num_classes
        ]
    return counts


def class_weights(counts: np.ndarray, method: str = "median") -> np.ndarray:
    """Weights from pixel counts; absent classes get 0.

    - ``median``: median frequency balancing (Eigen & Fergus 2015), w_c = median(f) / f_c;
    - ``inverse``: w_c = 1 / f_c, scaled so the pixel-weighted mean weight is 1.
    """
    if method not in WEIGHTING_METHODS:
        raise ValueError(f"class weighting must be one of {WEIGHTING_METHODS}, got {method!r}")
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    frequency = counts / max(counts.sum(), 1.0)
    weights = np.zeros_like(frequency)
    if method == "median":
        weights[present] = np.median(frequency[present]) / frequency[present]
    else:
        weights[present] = 1.0 / frequency[present]
        weights *= 1.0 / max(float(np.sum(weights * frequency)), 1e-12)
    return weights
