"""Per-class pixel frequencies of a split and the class weights derived from them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.pipeline import mask_at_base_size
from animalseg.errors import DataError
from animalseg.files import write_atomic

WEIGHTING_METHODS = ("median", "inverse")
# how pixel_counts counts, in the cache key: caches of an earlier way of counting are not reused
COUNTING = "masks resized to base_size (long side, nearest neighbour) as training does"


def class_pixels(mask: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Pixels of each class in one mask (ignore pixels and unknown values not counted)."""
    return np.bincount(mask[mask != ignore_index].ravel(), minlength=num_classes)[:num_classes]


def pixel_counts(dataset: SegmentationDataset, split: str = "train", base_size: int | None = None) -> np.ndarray:
    """Pixels of each class over the WHOLE split (ignore pixels not counted), each mask resized
    first as training resizes it (long side ``base_size``; native size when ``None``)."""
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for index in range(len(dataset.ids(split))):
        mask = mask_at_base_size(dataset.load(split, index)[1], base_size)
        counts += class_pixels(mask, dataset.num_classes, dataset.ignore_index)
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


def resolve_class_weights(
    setting: str | Sequence[float] | None, dataset: SegmentationDataset, cache_dir: str | Path, base_size: int | None
) -> list[float] | None:
    """``loss.class_weights`` → weights: ``null``, an explicit list (one per class), or ``auto`` /
    ``auto_inverse`` (median / inverse frequency over the whole train split at the training scale
    ``base_size`` (``data.base_size``), cached in ``cache_dir/cache/class_weights-<hash>.json``
    keyed by everything the counts depend on)."""
    if setting is None:
        return None
    if not isinstance(setting, str):
        weights = [float(w) for w in setting]
        if len(weights) != dataset.num_classes:
            raise DataError(
                f"loss.class_weights has {len(weights)} values but the dataset has "
                f"{dataset.num_classes} classes ({', '.join(dataset.class_names)})"
            )
        return weights
    methods = {"auto": "median", "auto_inverse": "inverse"}
    if setting not in methods:
        raise DataError(f"loss.class_weights={setting}: use null, a list, 'auto' or 'auto_inverse'")
    key = json.dumps(
        [
            COUNTING,
            base_size,
            type(dataset).__name__,
            str(getattr(dataset, "root", "")),
            dataset.class_names,
            dataset.ids("train"),
        ]
    )
    path = Path(cache_dir) / "cache" / f"class_weights-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        counts = np.array(json.loads(path.read_text())["pixel_counts"])
    else:
        counts = pixel_counts(dataset, "train", base_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        # per-process temp file: parallel sweep jobs and the workers of one run may all get here
        record = {"classes": dataset.class_names, "base_size": base_size, "pixel_counts": counts.tolist()}
        write_atomic(path, json.dumps(record))
    return class_weights(counts, methods[setting]).tolist()
