"""Small VOC-style datasets written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from animalseg.data.dataset import SegmentationDataset

LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:224,64,64::\ndog:32,128,224::\n"
COLORS = {0: (0, 0, 0), 1: (224, 64, 64), 2: (32, 128, 224)}


def _mask(height: int, width: int, label: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    mask[top : top + height // 2, left : left + width // 2] = label
    return mask


def write_color_root(
    root: Path, name: str, label: int, sizes: list[tuple[int, int]], split: dict[str, list[int]], crlf: bool = False
) -> None:
    """A VOC root with RGB colour masks; photos as PNG in JPEGImages, some RGBA / palette."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / name / folder).mkdir(parents=True, exist_ok=True)
    for index, (height, width) in enumerate(sizes):
        sample = f"{name}_{index:03d}"
        rng = np.random.default_rng(index)
        photo = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        if index % 3 == 1:
            photo = photo.convert("RGBA")
        elif index % 3 == 2:
            photo = photo.convert("P")
        photo.save(root / name / "JPEGImages" / f"{sample}.png")
        mask = _mask(height, width, label, index)
        rgb = np.zeros((height, width, 3), np.uint8)
        for value, color in COLORS.items():
            rgb[mask == value] = color
        Image.fromarray(rgb).save(root / name / "SegmentationClass" / f"{sample}.png")
    end = "\r\n" if crlf else "\n"
    for split_name, indices in split.items():
        lines = [f"{name}_{i:03d}  " for i in indices]
        text = end.join([*lines[:1], "", *lines[1:]])  # a blank line, trailing spaces, no final newline
        (root / name / "ImageSets" / "Segmentation" / f"{split_name}.txt").write_text(text, newline="")


def write_animals_like(root: Path) -> Path:
    """Two sub-roots (cat, dog) with a shared labelmap, odd sizes, CRLF lists."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text(LABELMAP)
    sizes = [(40, 36), (40, 36), (30, 50), (40, 36)]
    write_color_root(root, "cat", 1, sizes, {"train": [0, 1, 2], "val": [3]}, crlf=True)
    write_color_root(root, "dog", 2, [(33, 33)] * 4, {"train": [0, 1], "val": [2, 3]})
    return root


def write_voc_root(root: Path, count: int = 6, num_classes: int = 21) -> Path:
    """A single VOC root: JPEG photos, palette masks with 255 borders, odd sizes."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    palette = np.zeros((256, 3), np.uint8)
    palette[:num_classes] = np.random.default_rng(0).integers(0, 255, (num_classes, 3))
    palette[255] = (224, 224, 192)
    ids = []
    for index in range(count):
        height, width = 37 + 3 * index, 45 - 2 * index
        sample = f"2007_{index:06d}"
        ids.append(sample)
        rng = np.random.default_rng(index)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{sample}.jpg", quality=90
        )
        mask = _mask(height, width, 1 + index % (num_classes - 1), index)
        border = (mask > 0) & ~binary_erosion(mask > 0)
        mask[border] = 255
        image = Image.fromarray(mask, mode="P")
        image.putpalette(palette.reshape(-1).tolist())
        image.save(root / "SegmentationClass" / f"{sample}.png")
    lists = root / "ImageSets" / "Segmentation"
    (lists / "train.txt").write_text("\r\n".join(ids[: count - 2]) + "\r\n", newline="")
    (lists / "val.txt").write_text("\n".join(ids[count - 2 :]) + "\n\n")
    return root


class SquareDataset(SegmentationDataset):
    """One white square (class 1) on black: alignment of image and mask is checkable."""

    def __init__(self, size=20, count=4):
        super().__init__(["bg", "square"], [(0, 0, 0), (255, 255, 255)])
        self.size, self.count = size, count

    def ids(self, split):
        return [str(i) for i in range(self.count)]

    def load_uncached(self, split, index):
        image = np.zeros((self.size, self.size + 6, 3), np.uint8)
        mask = np.zeros((self.size, self.size + 6), np.uint8)
        image[5:12, 4:15] = 255
        mask[5:12, 4:15] = 1
        return image, mask
