"""Reading photos and PNG masks, shared by every file layout.

A mask is decoded either by colour (the dataset has colours from a ``labelmap.txt``: palette
PNGs through their palette, greyscale levels as grey colours) or by index (palette / greyscale
values are class indices, 255 = void; RGB masks in the classes' colours).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from animalseg.errors import DataError

IGNORE = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
UNKNOWN = np.iinfo(np.uint16).max
INDEX_MODES = ("P", "L", "I;16", "I")  # PNG modes whose values are class indices without a labelmap
GREY_MODES = ("1", "L", "LA", "I;16", "I")  # decoded as grey colours (g, g, g) with a grey labelmap

Unknown = list[tuple[object, int]]  # (colour tuple or index, pixel count)


def voc_colormap(num_classes: int) -> np.ndarray:
    """The standard Pascal VOC palette (bit-interleaved) for ``num_classes`` classes."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def open_image(path: Path) -> Image.Image:
    """Open an image file, turning a missing or unreadable file into a DataError."""
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable image ({error})") from None
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable image ({error})") from None


def read_image(path: Path) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, whatever its mode (RGBA, P, L, ...)."""
    with open_image(path) as im:
        if im.mode == "RGBA":
            return np.asarray(im)[..., :3].copy()
        return np.asarray(im.convert("RGB"))


def read_id_list(path: Path) -> list[str]:
    """Ids of a split list, tolerating CRLF, blank lines and trailing spaces."""
    text = path.read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()]


def describe_unknown(value: object, count: int, source: str = "the labelmap") -> str:
    """One phrase for a mask value that is not a class."""
    if isinstance(value, tuple):
        return f"unknown mask colour {value} on {count} pixels (not in {source})"
    return f"class index {value} on {count} pixels is past the class list (not in {source})"


class MaskDecoder:
    """PNG mask → (H, W) uint8 class indices, with the values that are no class.

    ``by_colour``: the classes have real colours (a labelmap), so every mask is decoded by
    colour whatever its PNG mode; otherwise palette/greyscale values are indices and RGB masks
    are matched against ``colors``. ``source`` names where the classes came from, for messages.
    """

    def __init__(self, colors: np.ndarray, by_colour: bool, source: str):
        self.colors = np.asarray(colors, np.uint8).reshape(-1, 3)
        self.by_colour = by_colour
        self.source = source
        packed = (self.colors[:, 0].astype(np.int64) << 16) | (self.colors[:, 1].astype(np.int64) << 8)
        packed |= self.colors[:, 2]
        self._lut = np.full(1 << 24, UNKNOWN, dtype=np.uint16)
        self._lut[packed] = np.arange(len(self.colors))

    def decode(self, path: Path) -> tuple[np.ndarray, Unknown]:
        """Mask indices (unknown values → 255) and the unknown colours/indices with counts."""
        with open_image(path) as im:
            if not self.by_colour and im.mode in INDEX_MODES:
                values = np.asarray(im if im.mode in ("P", "L") else im.convert("I"))
                bad = (values >= len(self.colors)) & (values != IGNORE)
                mask = np.where(bad, IGNORE, values).astype(np.uint8)
                found, counts = np.unique(values[bad], return_counts=True)
                return mask, [(int(v), int(c)) for v, c in zip(found, counts, strict=True)]
            if self.by_colour and im.mode in GREY_MODES:
                if not (self.colors == self.colors[:, :1]).all():
                    raise DataError(
                        f"{path}: a greyscale ({im.mode}) mask, but the colours of {self.source} are not all "
                        "grey; save the masks in the labelmap's colours (RGB or palette PNG)"
                    )
                levels = np.asarray(im.convert("I")).astype(np.int64)
                classes = self._lut[np.minimum(levels, 255) * 0x010101]
                classes[levels > 255] = UNKNOWN
                return _known(classes, levels, lambda v: (v, v, v))
            rgb = np.asarray(im.convert("RGB"))
        packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8)
        packed |= rgb[..., 2]
        return _known(self._lut[packed], packed, lambda v: ((v >> 16) & 255, (v >> 8) & 255, v & 255))

    def problems(self, path: Path, unknown: Unknown) -> list[str]:
        """One line per unknown value of ``path``, each saying what to do about it."""
        if not unknown:
            return []
        fix = (
            f"add the colour to {self.source} or set data.dataset.unknown_color=ignore"
            if self.by_colour or any(isinstance(v, tuple) for v, _ in unknown)
            else f"extend {self.source} or set data.dataset.unknown_color=ignore"
        )
        return [f"{path}: {describe_unknown(value, count, self.source)}; {fix}" for value, count in unknown]


def _known(
    classes: np.ndarray, keys: np.ndarray, colour: Callable[[int], tuple[int, int, int]]
) -> tuple[np.ndarray, Unknown]:
    """The mask (``UNKNOWN`` classes → ignore) and each unknown colour, named by ``colour(key)``,
    with its pixel count."""
    bad = classes == UNKNOWN
    mask = np.where(bad, IGNORE, classes).astype(np.uint8)
    if not bad.any():
        return mask, []
    found, counts = np.unique(keys[bad], return_counts=True)
    return mask, [(colour(v), int(c)) for v, c in zip(found.tolist(), counts, strict=True)]


def mask_values(path: Path) -> set[int]:
    """The distinct values of an index (palette/greyscale) mask; empty for colour masks."""
    with open_image(path) as im:
        if im.mode not in INDEX_MODES:
            return set()
        values = np.asarray(im if im.mode in ("P", "L") else im.convert("I"))
    return {int(v) for v in np.unique(values)}
