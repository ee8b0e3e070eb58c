"""Pascal-VOC-style datasets: one root, or several roots (one per sub-folder) merged.

A root holds ``JPEGImages/<id>.{jpg,png}``, ``SegmentationClass/<id>.png`` and
``ImageSets/Segmentation/{train,val}.txt``. With a ``labelmap.txt`` in the root, masks are
decoded by colour whatever their PNG mode (palette PNGs through their palette); without one,
palette/greyscale values are class indices (255 = void) and RGB masks use the VOC palette.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from animalseg.data.dataset import IGNORE_INDEX, SPLITS, SegmentationDataset
from animalseg.data.labelmap import read_labelmap
from animalseg.errors import DataError

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LABELMAP_FILE = "labelmap.txt"
_SPLIT_LIST = Path("ImageSets") / "Segmentation"


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


@dataclass(frozen=True)
class Sample:
    """One listed id with the files that hold it."""

    id: str
    image: Path
    mask: Path


def read_id_list(path: Path) -> list[str]:
    """Ids of a split list, tolerating CRLF, blank lines and trailing spaces."""
    text = path.read_text(encoding="utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()]


class VOCDataset(SegmentationDataset):
    """A VOC root, or a folder whose sub-folders are VOC roots (merged, ids ``<sub>/<id>``).

    Classes come from ``labelmap.txt`` in the root when there is one, else from
    ``class_names`` (default: the 21 VOC classes) with the VOC palette. ``unknown_color``
    decides what a mask colour outside the labelmap does: ``error`` or ``ignore``.
    """

    def __init__(
        self,
        root: str | Path,
        class_names: list[str] | None = None,
        unknown_color: str = "error",
        image_dir: str = "JPEGImages",
        mask_dir: str = "SegmentationClass",
        cache: bool = True,
    ):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"data.root: dataset folder {self.root} does not exist (set data.root=/path/to/dataset)")
        if unknown_color not in ("error", "ignore"):
            raise DataError(f"data.unknown_color must be 'error' or 'ignore', got {unknown_color!r}")
        labelmap = self.root / LABELMAP_FILE
        self.labelmap = labelmap if labelmap.is_file() else None
        if self.labelmap is not None:
            names, colors = read_labelmap(labelmap)
        else:
            names = list(class_names or VOC_CLASSES)
            colors = voc_colormap(len(names))
        super().__init__(names, colors, cache=cache)
        self.unknown_color = unknown_color
        self.image_dir, self.mask_dir = image_dir, mask_dir
        self.voc_roots = self._find_roots()
        self.samples = {split: self._list_split(split) for split in SPLITS}
        self._color_lut = self._build_color_lut()

    def _find_roots(self) -> list[tuple[str, Path]]:
        if (self.root / _SPLIT_LIST).is_dir():
            return [("", self.root)]
        roots = sorted((sub.name, sub) for sub in self.root.iterdir() if (sub / _SPLIT_LIST).is_dir())
        if not roots:
            raise DataError(
                f"data.root: {self.root} has no {_SPLIT_LIST} folder, and neither has any of its "
                "sub-folders (expected a VOC root or a folder of VOC roots)"
            )
        return roots

    def _list_split(self, split: str) -> list[Sample]:
        samples: list[Sample] = []
        for prefix, root in self.voc_roots:
            list_file = root / _SPLIT_LIST / f"{split}.txt"
            if not list_file.is_file():
                continue
            images = (
                {p.stem: p for p in sorted((root / self.image_dir).glob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS}
                if (root / self.image_dir).is_dir()
                else {}
            )
            for sample_id in read_id_list(list_file):
                samples.append(
                    Sample(
                        id=f"{prefix}/{sample_id}" if prefix else sample_id,
                        image=images.get(sample_id, root / self.image_dir / f"{sample_id}.jpg"),
                        mask=root / self.mask_dir / f"{sample_id}.png",
                    )
                )
        return samples

    def _build_color_lut(self) -> np.ndarray:
        """A 2^24 table from packed RGB to class index (``UNKNOWN`` for unlisted colours)."""
        lut = np.full(1 << 24, UNKNOWN, dtype=np.uint16)
        packed = (self.colors[:, 0].astype(np.int64) << 16) | (self.colors[:, 1].astype(np.int64) << 8)
        packed |= self.colors[:, 2]
        lut[packed] = np.arange(self.num_classes)
        return lut

    def ids(self, split: str) -> list[str]:
        if split not in self.samples:  # another list, e.g. test.txt: read when asked for
            self.samples[split] = self._list_split(split)
        return [sample.id for sample in self.samples[split]]

    def masks_fingerprint(self, split: str) -> str:
        """Path, size and modification time of each mask file and of the labelmap, with the
        decoding settings and code: a mask edited, added or decoded otherwise changes it."""
        ids = self.ids(split)
        files = [sample.mask for sample in self.samples[split]] + ([self.labelmap] if self.labelmap else [])
        stats = []
        for path in files:
            stat = path.stat() if path.is_file() else None
            stats.append([str(path.resolve()), *((stat.st_size, stat.st_mtime_ns) if stat else (None, None))])
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        settings = [type(self).__name__, code, self.class_names, self.colors.tolist(), self.unknown_color, split, ids]
        return hashlib.sha256(json.dumps([*settings, stats]).encode()).hexdigest()

    def load_uncached(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[split][index]
        image = read_image(sample.image)
        mask = self.read_mask(sample.mask)
        if image.shape[:2] != mask.shape:
            raise DataError(
                f"{sample.image}: image is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{sample.mask} is {mask.shape[1]}x{mask.shape[0]}"
            )
        return image, mask

    def read_mask(self, path: Path) -> np.ndarray:
        """A mask file as (H, W) uint8 class indices, 255 = void."""
        mask, unknown = self.decode_mask(path)
        if unknown and self.unknown_color == "error":
            raise DataError(
                [f"{path}: {describe_unknown(value, count)}" for value, count in unknown]
                + ["(set data.unknown_color=ignore to map them to the ignore index)"]
            )
        return mask

    def decode_mask(self, path: Path) -> tuple[np.ndarray, list[tuple[object, int]]]:
        """Mask indices (unknown values → ignore) and the unknown colours/indices with counts.

        With a labelmap, masks are decoded by colour whatever the PNG mode: a palette mask
        through its palette (a drawing tool numbers its palette as it likes, not in labelmap
        order), a greyscale mask as grey colours (level g is (g, g, g)) when every labelmap
        colour is grey, else it is an error. Without one, palette and greyscale values are
        class indices (VOC) and RGB masks use the VOC palette.
        """
        with open_image(path) as im:
            if self.labelmap is None and im.mode in INDEX_MODES:
                values = np.asarray(im if im.mode in ("P", "L") else im.convert("I"))
                bad = (values >= self.num_classes) & (values != IGNORE_INDEX)
                mask = np.where(bad, IGNORE_INDEX, values).astype(np.uint8)
                found, counts = np.unique(values[bad], return_counts=True)
                return mask, [(int(v), int(c)) for v, c in zip(found, counts, strict=True)]
            if self.labelmap is not None and im.mode in GREY_MODES:
                if not (self.colors == self.colors[:, :1]).all():
                    raise DataError(
                        f"{path}: a greyscale ({im.mode}) mask, but the colours of {self.labelmap} are not all "
                        "grey; save the masks in the labelmap's colours (RGB or palette PNG)"
                    )
                levels = np.asarray(im.convert("I")).astype(np.int64)
                classes = self._color_lut[np.minimum(levels, 255) * 0x010101]
                classes[levels > 255] = UNKNOWN
                return _known(classes, levels, lambda v: (v, v, v))
            rgb = np.asarray(im.convert("RGB"))
        packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8)
        packed |= rgb[..., 2]
        return _known(self._color_lut[packed], packed, lambda v: ((v >> 16) & 255, (v >> 8) & 255, v & 255))


UNKNOWN = np.iinfo(np.uint16).max
INDEX_MODES = ("P", "L", "I;16", "I")  # PNG modes whose values are class indices without a labelmap
GREY_MODES = ("1", "L", "LA", "I;16", "I")  # decoded as grey colours (g, g, g) with a grey labelmap


def _known(
    classes: np.ndarray, keys: np.ndarray, colour: Callable[[int], tuple[int, int, int]]
) -> tuple[np.ndarray, list[tuple[object, int]]]:
    """The mask (``UNKNOWN`` classes → ignore) and each unknown colour, named by ``colour(key)``,
    with its pixel count."""
    bad = classes == UNKNOWN
    mask = np.where(bad, IGNORE_INDEX, classes).astype(np.uint8)
    if not bad.any():
        return mask, []
    found, counts = np.unique(keys[bad], return_counts=True)
    return mask, [(colour(v), int(c)) for v, c in zip(found.tolist(), counts, strict=True)]


def describe_unknown(value: object, count: int) -> str:
    """One phrase for a mask value that is not a class."""
    kind = "colour" if isinstance(value, tuple) else "index"
    return f"unknown mask {kind} {value} on {count} pixels (not in the labelmap)"


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


def read_image(path: Path) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, whatever its mode (RGBA, P, L, ...)."""
    with open_image(path) as im:
        if im.mode == "RGBA":
            return np.asarray(im)[..., :3].copy()
        return np.asarray(im.convert("RGB"))
