"""The dataset interface every source implements: class names and colours travel with it."""

from __future__ import annotations

import abc
import hashlib
import json
import logging
from collections.abc import Sequence

import numpy as np

from animalseg.errors import DataError

# A data option whose data.root is ??? (folder, cvat, ...): checked before TensorFlow loads.
MISSING_ROOT = "data.root: this data option reads your files; set data.root=/path/to/dataset"

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
SPLITS = ("train", "val")
CACHE_MODES = (True, False, "auto")
# data.dataset.cache=auto keeps decoded splits in memory up to this many GiB (all splits together):
# on a 24 GiB machine that leaves room for the model, TensorFlow and a second process.
DEFAULT_CACHE_BUDGET_GB = 8.0


class SegmentationDataset(abc.ABC):
    """Images with per-pixel class indices, split into ``train`` and ``val``.

    Subclasses provide ``ids(split)`` and ``load_uncached(split, index)``; a decoded-array cache
    keeps loaded pairs in memory so later epochs skip decoding: ``cache=True`` for every split,
    ``False`` for none, ``auto`` for each split (train first) while the decoded splits together fit
    ``cache_budget_gb`` (as ``decoded_bytes`` estimates them; others decode from disk each epoch).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        colors: np.ndarray | Sequence[Sequence[int]],
        ignore_index: int = IGNORE_INDEX,
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
    ):
        self.class_names = [str(name) for name in class_names]
        self.colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if len(self.colors) != len(self.class_names):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.colors)} colours")
        self.ignore_index = int(ignore_index)
        if cache not in CACHE_MODES:
            raise DataError(f"data.dataset.cache={cache}: use true (memory), false (decode each epoch) or auto")
        self.cache = cache
        self.cache_budget_gb = DEFAULT_CACHE_BUDGET_GB if cache_budget_gb is None else float(cache_budget_gb)
        self._cached_splits: dict[str, bool] = {}
        self._cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        # errors raised while loading inside tf.data, where TF wraps them in its own error type
        self.load_errors: list[DataError] = []

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abc.abstractmethod
    def ids(self, split: str) -> list[str]:
        """The sample ids of ``split`` in a fixed order; empty for a split the dataset does not have
        (most have no ``test`` split)."""

    @abc.abstractmethod
    def load_uncached(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode sample ``index`` of ``split``: (H, W, 3) uint8 image, (H, W) uint8 mask."""

    def decoded_bytes(self, split: str) -> int | None:
        """Memory the decoded ``split`` takes (image and mask), or None when unknown without
        decoding (``cache=auto`` then keeps it in memory)."""
        return None

    def caches(self, split: str) -> bool:
        """Whether ``split``'s decoded pairs are kept in memory (decided once per split)."""
        if self.cache is not True and self.cache is not False and split not in self._cached_splits:
            budget = self.cache_budget_gb * 2**30
            used = sum(self.decoded_bytes(s) or 0 for s, kept in self._cached_splits.items() if kept)
            size = self.decoded_bytes(split)
            self._cached_splits[split] = size is None or used + size <= budget
            log.info(
                "data.dataset.cache=auto: the %s split (%.2f GiB decoded) %s data.dataset.cache_budget_gb=%s",
                split,
                (size or 0) / 2**30,
                "is kept in memory within" if self._cached_splits[split] else "is decoded each epoch: over",
                self.cache_budget_gb,
            )
        return self._cached_splits.get(split, bool(self.cache))

    def load(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` of ``split`` as (image uint8 HxWx3, mask uint8 HxW)."""
        key = (split, int(index))
        if key in self._cache:
            return self._cache[key]
        try:
            pair = self.load_uncached(split, int(index))
        except DataError as error:
            self.load_errors.append(error)
            raise
        if self.caches(split):
            self._cache[key] = pair
        return pair

    def masks_fingerprint(self, split: str) -> str:
        """A digest that changes whenever the masks of ``split`` may: it keys what is cached from
        them (the class weights). This one hashes every mask, which is always right; a dataset
        that can tell from its settings or file stats overrides it to skip the decoding."""
        ids = self.ids(split)
        digest = hashlib.sha256(json.dumps([self.class_names, self.ignore_index, ids]).encode())
        for index in range(len(ids)):
            mask = np.ascontiguousarray(self.load(split, index)[1])
            digest.update(f"{mask.shape} {mask.dtype}".encode() + mask.tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return sum(len(self.ids(split)) for split in SPLITS)

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """Class-index mask → RGB image in the dataset's colours (ignore pixels white)."""
        return colorize(mask, self.colors)


def colorize(mask: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Class-index mask → RGB in the given colours; indices without a colour (void) are white."""
    palette = np.full((256, 3), 255, dtype=np.uint8)
    palette[: len(colors)] = colors
    return palette[mask]
