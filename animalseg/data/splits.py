"""A train/val split made for data that comes without one.

Seeded and stratified like the k-fold assignment (``folds.py``): images are grouped into units
(byte-identical files are one unit, so no copy of a validation image is trained on), units by the
set of classes they contain; within each group the units are shuffled with the seed and the
first ones go to val until the group's share reaches ``val_fraction`` (counted over all groups
so far, so many small groups do not round to no val at all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalseg.errors import ConfigError, DataError
from animalseg.files import write_atomic

SPLIT_DIR = "splits"  # the run folder's sub-folder the made split is written to


def stratified_split(
    keys: Sequence[str], classes: Sequence[frozenset[int]], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Positions of the train and val samples; ``keys[i]`` groups identical samples, ``classes[i]``
    are the classes sample ``i`` contains."""
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction}: must be between 0 and 1 (e.g. 0.2)")
    units: dict[str, list[int]] = defaultdict(list)
    unit_classes: dict[str, set[int]] = defaultdict(set)
    for position, (key, present) in enumerate(zip(keys, classes, strict=True)):
        units[key].append(position)
        unit_classes[key] |= present
    if len(units) < 2:
        raise DataError(
            f"the dataset has {len(units)} distinct image(s): a train/val split needs at least 2 "
            "(add images, or give split lists with data.dataset.split_dir)"
        )
    strata: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for key in sorted(units, key=lambda k: units[k]):  # a fixed order before the seeded shuffle
        strata[tuple(sorted(unit_classes[key]))].append(key)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    seen = 0
    for signature in sorted(strata):
        for position in rng.permutation(len(strata[signature])):
            unit = units[strata[signature][position]]
            seen += len(unit)
            if len(val) + len(unit) / 2 <= val_fraction * seen:
                val.extend(unit)
            else:
                train.extend(unit)
    if not val:  # fewer images than 1 / val_fraction: still one unit to validate on
        first = units[strata[min(strata)][0]]
        val, train = first, [p for p in train if p not in first]
    if not train:
        raise DataError("every image landed in val; lower data.val_fraction")
    return sorted(train), sorted(val)


def write_split(folder: Path, ids: dict[str, list[str]]) -> Path:
    """Write ``<folder>/splits/<split>.txt`` (one id per line), the lists
    ``data.dataset.split_dir`` reads back."""
    target = folder / SPLIT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for split, listed in ids.items():
        write_atomic(target / f"{split}.txt", "".join(f"{sample_id}\n" for sample_id in listed))
    return target
