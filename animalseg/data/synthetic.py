"""A deterministic generated dataset: textured shapes on textured backgrounds.

Needs no files and no network, so the default job and the tests run anywhere. Seven classes like
the animals set: class 0 is background, classes 1-6 are shapes, each with its own colour tint and
stripe texture, so that both shape and appearance carry the class.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from animalseg.data.dataset import SegmentationDataset

CLASS_NAMES = ("background", "disc", "square", "triangle", "diamond", "ring", "cross")
COLORS = (
    (0, 0, 0),
    (224, 64, 64),
    (160, 96, 64),
    (7, 73, 80),
    (32, 128, 224),
    (112, 192, 192),
    (102, 178, 138),
)
# Per-class base colour and stripe angle of the object texture (background has its own noise).
_TINTS = np.array(
    [(90, 110, 80), (200, 80, 60), (220, 180, 60), (70, 160, 90), (60, 90, 200), (170, 70, 170), (230, 230, 230)],
    dtype=np.float32,
)
_STRIPE_ANGLES = np.deg2rad([0, 0, 30, 60, 90, 120, 150])
_SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


class SyntheticDataset(SegmentationDataset):
    """``train_size`` + ``val_size`` (+ ``test_size``) generated images of ``image_size`` pixels,
    seeded by ``seed``."""

    def __init__(
        self,
        image_size: int = 64,
        train_size: int = 96,
        val_size: int = 24,
        max_objects: int = 3,
        seed: int = 0,
        cache: bool = True,
        test_size: int = 0,
    ):
        super().__init__(CLASS_NAMES, COLORS, cache=cache)
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}")
        self.image_size = int(image_size)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.max_objects = int(max_objects)
        self.seed = int(seed)

    def ids(self, split: str) -> list[str]:
        return [f"{split}_{i:05d}" for i in range(self.sizes.get(split, 0))]

    def masks_fingerprint(self, split: str) -> str:
        """The generator's settings and code: the masks are a function of them."""
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        settings = [type(self).__name__, code, self.class_names, self.image_size, self.sizes, self.max_objects]
        return hashlib.sha256(json.dumps([*settings, self.seed, split, self.ids(split)]).encode()).hexdigest()

    def load_uncached(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, _SPLIT_OFFSETS[split] + index])
        size = self.image_size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        background = _TINTS[0] + rng.normal(0.0, 25.0, (size, size, 1)).astype(np.float32)
        background += 20.0 * np.sin((xx + yy) / rng.uniform(3.0, 8.0))[..., None]
        image = background
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            label = int(rng.integers(1, len(CLASS_NAMES)))
            shape = _draw_shape(label, size, rng)
            angle = _STRIPE_ANGLES[label]
            stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 1.5)[..., None]
            texture = _TINTS[label] * (0.8 + 0.2 * stripes) + rng.normal(0, 12.0, (size, size, 1))
            image = np.where(shape[..., None], texture, image)
            mask[shape] = label
        return np.clip(image, 0, 255).astype(np.uint8), mask


def _draw_shape(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one shape of class ``label`` at a random place and scale."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    radius = int(rng.uniform(0.12, 0.28) * size)
    cx, cy = (int(v) for v in rng.integers(radius, size - radius, size=2))
    name = CLASS_NAMES[label]
    if name == "disc":
        cv2.circle(canvas, (cx, cy), radius, 1, thickness=-1)
    elif name == "ring":
        cv2.circle(canvas, (cx, cy), radius, 1, thickness=max(2, radius // 3))
    elif name == "square":
        cv2.rectangle(canvas, (cx - radius, cy - radius), (cx + radius, cy + radius), 1, -1)
    elif name == "cross":
        arm = max(2, radius // 3)
        cv2.rectangle(canvas, (cx - radius, cy - arm), (cx + radius, cy + arm), 1, -1)
        cv2.rectangle(canvas, (cx - arm, cy - radius), (cx + arm, cy + radius), 1, -1)
    else:
        corners = {
            "triangle": [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
            "diamond": [(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)],
        }[name]
        cv2.fillPoly(canvas, [np.array(corners, dtype=np.int32)], 1)
    return canvas.astype(bool)
