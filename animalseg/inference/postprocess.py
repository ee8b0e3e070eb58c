"""Clean-up of a predicted mask (the report's "post-processing (morphological operations)"):
holes inside an object filled, and specks merged into what surrounds them.

scipy.ndimage does the labelling and the hole filling; the merge rule is ours: a region smaller
than ``min_area`` takes the class that most of its one-pixel outer border has (so a speck of fox
inside a wolf becomes wolf, and a small hole of background inside a lion becomes lion).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BACKGROUND = 0  # the class whose regions are never "objects" with holes (index 0, as every layout orders it)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background enclosed by one object class (any class but background) takes that class; an
    object of another class inside it stays (a fox inside a wolf is not a hole)."""
    filled = mask.copy()
    background = mask == BACKGROUND
    for label in np.unique(mask):
        if label == BACKGROUND:
            continue
        region = mask == label
        filled[ndimage.binary_fill_holes(region) & background] = label
    return filled


def merge_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Connected regions (4-connected) of fewer than ``min_area`` pixels, of any class, take the
    most common class on their outer border; a region that is the whole image stays."""
    merged = mask.copy()
    for label in np.unique(mask):
        regions, count = ndimage.label(mask == label)
        if count == 0:
            continue
        areas = np.bincount(regions.ravel())
        for index, box in enumerate(ndimage.find_objects(regions), start=1):
            if areas[index] >= min_area:
                continue
            grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
            inside = regions[grown] == index
            border = ndimage.binary_dilation(inside) & ~inside
            if not border.any():
                continue
            neighbours = merged[grown][border]
            merged[grown][inside] = np.bincount(neighbours).argmax()
    return merged


def postprocess(mask: np.ndarray, fill: bool, min_area: int) -> np.ndarray:
    """(H, W) class indices cleaned as asked: holes first, then small regions."""
    if fill:
        mask = fill_holes(mask)
    if min_area > 0:
        mask = merge_small_regions(mask, min_area)
    return mask
