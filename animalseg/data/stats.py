"""Per-class pixel frequencies of a split and the class weights derived from them."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.pipeline import mask_at_base_size
from animalseg.errors import ConfigError, DataError
from animalseg.files import write_atomic

log = logging.getLogger(__name__)

WEIGHTING_METHODS = ("median", "median_share", "inverse")
# loss.class_weights string → weighting method
AUTO_SETTINGS = {"auto": "median", "auto_share": "median_share", "auto_inverse": "inverse"}
DEFINITIONS = {
    "median": "median frequency balancing (Eigen & Fergus): f_c = pixels of c / pixels of the images containing c",
    "median_share": "median of class shares: f_c = pixels of c / all pixels",
    "inverse": "inverse class share: f_c = pixels of c / all pixels, w_c = 1 / f_c normalised",
}
# how class_statistics counts, in the cache key: caches of an earlier way of counting are not reused
COUNTING = (
    "masks resized to base_size (long side, nearest neighbour) as training does; "
    "per class: its pixels, and the labelled pixels of the images containing it"
)


def class_pixels(mask: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Pixels of each class in one mask (ignore pixels and unknown values not counted)."""
    return np.bincount(mask[mask != ignore_index].ravel(), minlength=num_classes)[:num_classes]


def containing_pixels(counts: np.ndarray) -> np.ndarray:
    """For one image's class ``counts``: its labelled pixels for each class it contains, else 0
    (summed over images, the denominator of the median-frequency f_c)."""
    counts = np.asarray(counts)
    return np.where(counts > 0, counts.sum(), 0)


def class_statistics(
    dataset: SegmentationDataset, split: str = "train", base_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per class over the WHOLE split, each mask resized first as training resizes it (long side
    ``base_size``; native size when ``None``), ignore pixels not counted: the pixels of the class,
    and the labelled pixels of the images that contain it."""
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    image_pixels = np.zeros(dataset.num_classes, dtype=np.int64)
    for index in range(len(dataset.ids(split))):
        mask = mask_at_base_size(dataset.load(split, index)[1], base_size)
        pixels = class_pixels(mask, dataset.num_classes, dataset.ignore_index)
        counts += pixels
        image_pixels += containing_pixels(pixels)
    return counts, image_pixels


def pixel_counts(dataset: SegmentationDataset, split: str = "train", base_size: int | None = None) -> np.ndarray:
    """Pixels of each class over the WHOLE split (ignore pixels not counted), each mask resized
    first as training resizes it (long side ``base_size``; native size when ``None``)."""
    return class_statistics(dataset, split, base_size)[0]


def class_weights(counts: np.ndarray, method: str = "median", image_pixels: np.ndarray | None = None) -> np.ndarray:
    """Weights from pixel counts; absent classes get 0.

    - ``median``: median frequency balancing (Eigen & Fergus 2015), w_c = median(f) / f_c with
      f_c = pixels of c / pixels of the images containing c (``image_pixels``): a class is rare
      when it is small where it appears, not merely when few images hold it;
    - ``median_share``: the same with f_c = c's share of all pixels;
    - ``inverse``: w_c = 1 / f_c (f_c the share), scaled so the pixel-weighted mean weight is 1.
    """
    if method not in WEIGHTING_METHODS:
        raise ValueError(f"class weighting must be one of {WEIGHTING_METHODS}, got {method!r}")
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    share = counts / max(counts.sum(), 1.0)
    weights = np.zeros_like(share)
    if method == "median":
        if image_pixels is None:
            raise ValueError("median frequency balancing needs image_pixels (see class_statistics)")
        frequency = counts[present] / np.asarray(image_pixels, dtype=np.float64)[present]
        weights[present] = np.median(frequency) / frequency
    elif method == "median_share":
        weights[present] = np.median(share[present]) / share[present]
    else:
        weights[present] = 1.0 / share[present]
        weights *= 1.0 / max(float(np.sum(weights * share)), 1e-12)
    return weights


def resolve_class_weights(
    setting: str | Sequence[float] | None, dataset: SegmentationDataset, cache_dir: str | Path, base_size: int | None
) -> list[float] | None:
    """``loss.class_weights`` → weights: ``null``, an explicit list (one per class), or ``auto``
    (median frequency balancing), ``auto_share`` (median of class shares) or ``auto_inverse``
    (inverse share), counted over the whole train split at the training scale ``base_size``
    (``data.base_size``) and cached in ``cache_dir/cache/class_weights-<hash>.json``, keyed by the
    way of counting, ``base_size`` and the train masks' fingerprint (so no other masks share it)."""
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
    if setting not in AUTO_SETTINGS:
        raise ConfigError(
            f"loss.class_weights={setting}: unknown; use null, a list (one weight per class) or one of "
            f"{', '.join(AUTO_SETTINGS)}"
        )
    key = json.dumps([COUNTING, base_size, dataset.masks_fingerprint("train")])
    path = Path(cache_dir) / "cache" / f"class_weights-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        record = json.loads(path.read_text())
        counts, image_pixels = np.array(record["pixel_counts"]), np.array(record["image_pixels"])
    else:
        counts, image_pixels = class_statistics(dataset, "train", base_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        # per-process temp file: parallel sweep jobs and the workers of one run may all get here
        record = {
            "classes": dataset.class_names,
            "base_size": base_size,
            "pixel_counts": counts.tolist(),
            "image_pixels": image_pixels.tolist(),
        }
        write_atomic(path, json.dumps(record))
    method = AUTO_SETTINGS[setting]
    weights = class_weights(counts, method, image_pixels).tolist()
    log.info(
        "loss.class_weights=%s: %s; %s",
        setting,
        DEFINITIONS[method],
        ", ".join(f"{name} {w:.3f}" for name, w in zip(dataset.class_names, weights, strict=True)),
    )
    return weights
