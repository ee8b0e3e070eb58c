"""Clean-up of a predicted mask (the report's "post-processing (morphological operations)"):
holes inside an object filled, and specks merged into what surrounds them.

scipy.ndimage does the labelling and the hole filling; the merge rule is ours: a region smaller
than ``min_area`` takes the class that most of its one-pixel outer border has (so a speck of fox
inside a wolf becomes wolf, and a small hole of background inside a lion becomes lion).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from animalseg.errors import ConfigError

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


def dense_crf(image: np.ndarray, probabilities: np.ndarray, iterations: int) -> np.ndarray:
    """(H, W, C) probabilities refined by a fully connected CRF (Kraehenbuehl & Koltun, 2011) over
    the (H, W, 3) photo: a smoothness kernel and an appearance kernel (nearby pixels of like colour
    take like classes), with DeepLab's usual weights and widths. pydensecrf2 (``pip install
    'animalseg[crf]'``: the reference implementation's C++ code, built from source) runs it."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise ConfigError("inference.crf_iterations: needs pydensecrf2 (pip install 'animalseg[crf]')") from None
    height, width, classes = probabilities.shape
    crf = dcrf.DenseCRF2D(width, height, classes)
    unary = -np.log(np.clip(probabilities, 1e-8, 1.0)).transpose(2, 0, 1).reshape(classes, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, np.float32))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=60, srgb=10, rgbim=np.ascontiguousarray(image, np.uint8), compat=5)
    refined = np.array(crf.inference(iterations), np.float32).reshape(classes, height, width)
    return refined.transpose(1, 2, 0)


def postprocess(mask: np.ndarray, fill: bool, min_area: int) -> np.ndarray:
    """(H, W) class indices cleaned as asked: holes first, then small regions."""
    if fill:
        mask = fill_holes(mask)
    if min_area > 0:
        mask = merge_small_regions(mask, min_area)
    return mask
