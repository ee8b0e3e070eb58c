"""The augmentation policy the training pipeline applies to every (image, mask) pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    """Random rescale in ``scale_range`` and horizontal flip (applied by the pipeline around its
    random crop), then ``ops`` in order, each ``op(image, mask, seed) -> (image, mask)``."""

    scale_range: Sequence[float] = (1.0, 1.0)
    hflip: bool = False
    ops: Sequence = ()

    def __call__(self, image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        seeds = tf.random.experimental.stateless_split(seed, max(1, len(self.ops)))
        for index, op in enumerate(self.ops):
            image, mask = op(image, mask, seeds[index])
        return image, mask
