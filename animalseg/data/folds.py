"""k-fold cross-validation: a dataset's train+val ids re-split into ``folds`` folds.

The assignment is deterministic (seeded), stratified by which classes an image contains, and
keeps images the dataset checker finds identical (same pixels) in one fold, so no copy of a
validation image is trained on. A test split, if any, stays out of every fold.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import numpy as np

from animalseg.data.check import pixel_digest
from animalseg.data.dataset import SPLITS, SegmentationDataset
from animalseg.errors import ConfigError

Member = tuple[str, int]  # (split, index) in the source dataset


def assign_folds(dataset: SegmentationDataset, folds: int, seed: int) -> list[list[Member]]:
    """The members of each fold. Identical images form one unit; units are grouped by the set of
    classes they contain, shuffled with ``seed`` within a group, and each goes to the fold with
    the fewest images of its group so far (then the fewest images overall)."""
    units: dict[str, list[Member]] = defaultdict(list)
    classes: dict[str, set[int]] = defaultdict(set)
    for split in SPLITS:
        for index in range(len(dataset.ids(split))):
            image, mask = dataset.load(split, index)
            key = pixel_digest(image)
            units[key].append((split, index))
            present = np.unique(mask)
            classes[key].update(int(c) for c in present if c != dataset.ignore_index)
    if len(units) < folds:
        raise ConfigError(f"data.folds={folds}: the dataset has only {len(units)} distinct train+val images")
    strata: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for key in sorted(units, key=lambda k: units[k]):  # a fixed order before the seeded shuffle
        strata[tuple(sorted(classes[key]))].append(key)
    rng = np.random.default_rng(seed)
    members: list[list[Member]] = [[] for _ in range(folds)]
    for signature in sorted(strata):
        keys = strata[signature]
        in_stratum = [0] * folds
        for position in rng.permutation(len(keys)):
            unit = units[keys[position]]
            fold = min(range(folds), key=lambda f: (in_stratum[f], len(members[f]), f))
            members[fold].extend(unit)
            in_stratum[fold] += len(unit)
    return [sorted(fold) for fold in members]


class FoldSplit(SegmentationDataset):
    """``source`` with its train+val re-split: fold ``fold`` of ``folds`` is ``val``, the other
    folds are ``train``; any other split (``test``) is the source's own."""

    def __init__(self, source: SegmentationDataset, folds: int, fold: int, seed: int = 0):
        if not isinstance(folds, int) or folds < 2:
            raise ConfigError(f"data.folds={folds}: k-fold needs an integer of at least 2 (null = the dataset's split)")
        if not isinstance(fold, int) or not 0 <= fold < folds:
            raise ConfigError(f"data.fold={fold}: must be one of 0..{folds - 1} with data.folds={folds}")
        super().__init__(source.class_names, source.colors, source.ignore_index, cache=False)  # source caches
        self.source = source
        assignment = assign_folds(source, folds, seed)
        others = [member for f, members in enumerate(assignment) if f != fold for member in members]
        self.members = {"train": sorted(others), "val": assignment[fold]}
        source_ids = {s: source.ids(s) for s in SPLITS}
        self._ids = {split: [source_ids[s][i] for s, i in members] for split, members in self.members.items()}

    def ids(self, split: str) -> list[str]:
        return self._ids[split] if split in self._ids else self.source.ids(split)

    def masks_fingerprint(self, split: str) -> str:
        """The source's masks and which of them are in ``split`` of this fold."""
        if split not in self.members:
            return self.source.masks_fingerprint(split)
        sources = [self.source.masks_fingerprint(s) for s in SPLITS]
        return hashlib.sha256(json.dumps([type(self).__name__, sources, self.members[split]]).encode()).hexdigest()

    def load_uncached(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.members:
            return self.source.load(split, index)
        return self.source.load(*self.members[split][index])
