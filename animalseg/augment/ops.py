"""Augmentation ops on (image float32 HxWx3 in [0, 255], mask int32 HxW) pairs.

Each op applies with probability ``p``, decided (like all its randomness) from the stateless
seed it is given, so a run's augmentation is reproducible. Geometry moves image and mask together:
bilinear for the image, nearest for the mask; pixels a transform uncovers are 0 in the image and
``ignore_index`` in the mask, so they are not trained on as background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import tensorflow as tf

from animalseg.data.dataset import IGNORE_INDEX


def _apply(p: float, seed: tf.Tensor, transform, image: tf.Tensor, mask: tf.Tensor):
    """``transform(image, mask, seed)`` with probability ``p``."""
    gate_seed, op_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    apply = tf.random.stateless_uniform([], gate_seed) < p
    return tf.cond(apply, lambda: transform(image, mask, op_seed), lambda: (image, mask))


class RandomRotation:
    """Rotation by a uniform angle in [-degrees, degrees] about the image centre."""

    def __init__(self, degrees: float = 30.0, p: float = 0.5, ignore_index: int = IGNORE_INDEX):
        self.degrees, self.p, self.ignore_index = float(degrees), float(p), int(ignore_index)

    def _rotate(self, image, mask, seed):
        angle = tf.random.stateless_uniform([], seed, -self.degrees, self.degrees) * math.pi / 180.0
        height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        # output (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): rotation about the centre
        transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
        shape = tf.shape(image)[:2]

        def warp(x, interpolation, fill):
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=x[None],
                transforms=transform[None],
                output_shape=shape,
                fill_value=fill,
                interpolation=interpolation,
                fill_mode="CONSTANT",
            )[0]

        rotated = warp(image, "BILINEAR", 0.0)
        labels = warp(tf.cast(mask, tf.float32)[..., None], "NEAREST", float(self.ignore_index))
        return rotated, tf.cast(labels[..., 0], mask.dtype)

    def __call__(self, image, mask, seed):
        return _apply(self.p, seed, self._rotate, image, mask)


class ColorJitter:
    """Brightness, contrast and saturation each scaled by a uniform factor in its range."""

    def __init__(
        self,
        brightness: Sequence[float] = (0.8, 1.2),
        contrast: Sequence[float] = (0.8, 1.2),
        saturation: Sequence[float] = (0.8, 1.2),
        p: float = 0.5,
    ):
        self.brightness, self.contrast, self.saturation = (
            tuple(map(float, r)) for r in (brightness, contrast, saturation)
        )
        self.p = float(p)

    def _jitter(self, image, mask, seed):
        seeds = tf.random.experimental.stateless_split(seed, 3)
        ranges = (self.brightness, self.contrast, self.saturation)
        factor = [tf.random.stateless_uniform([], seeds[i], lo, hi) for i, (lo, hi) in enumerate(ranges)]
        image = image * factor[0]
        image = (image - tf.reduce_mean(image)) * factor[1] + tf.reduce_mean(image)
        grey = tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        image = grey + (image - grey) * factor[2]
        return tf.clip_by_value(image, 0.0, 255.0), mask

    def __call__(self, image, mask, seed):
        return _apply(self.p, seed, self._jitter, image, mask)


class ElasticDeformation:
    """Simard-style elastic deformation: a random displacement field smoothed by a Gaussian of
    ``sigma`` and scaled by ``alpha`` pixels, one field for image and mask (OpenCV remap,
    ~7x faster than scipy's map_coordinates); borders reflect."""

    def __init__(self, alpha: float = 100.0, sigma: float = 10.0, p: float = 0.5):
        self.alpha, self.sigma, self.p = float(alpha), float(sigma), float(p)

    def deform(self, image: np.ndarray, mask: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NumPy/OpenCV implementation (also usable outside tf.data)."""
        rng = np.random.default_rng(np.asarray(seed, dtype=np.uint64).tolist())
        height, width = mask.shape
        fields = [
            cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), self.sigma) * self.alpha
            for _ in range(2)
        ]
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        map_x, map_y = grid_x + fields[0], grid_y + fields[1]
        warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        labels = cv2.remap(mask.astype(np.float32), map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        return warped, labels.astype(mask.dtype)

    def _elastic(self, image, mask, seed):
        warped, labels = tf.numpy_function(self.deform, [image, mask, seed], [image.dtype, mask.dtype], stateful=False)
        warped.set_shape(image.shape)
        labels.set_shape(mask.shape)
        return warped, labels

    def __call__(self, image, mask, seed):
        return _apply(self.p, seed, self._elastic, image, mask)
