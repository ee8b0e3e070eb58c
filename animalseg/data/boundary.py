"""Boundary targets derived from a semantic mask: pixels near a change of class."""

from __future__ import annotations

import tensorflow as tf

from animalseg.data.dataset import IGNORE_INDEX


def boundary_target(mask: tf.Tensor, width: int = 1, ignore_index: int = IGNORE_INDEX) -> tf.Tensor:
    """(H, W) class mask → (H, W, 1) float32: 1 within ``width`` pixels of a class change, else 0.

    Void pixels of the mask are ``ignore_index`` in the target, so the boundary loss skips them;
    a class next to void is not an edge (void hides where the real edge is).
    """
    # float32 max-pooling is exact for class indices and ~20x faster than int32 on CPU
    labels = tf.cast(mask, tf.float32)[None, ..., None]
    void = tf.equal(labels, float(ignore_index))
    size = 2 * int(width) + 1
    highest = tf.nn.max_pool2d(tf.where(void, -1.0, labels), size, 1, "SAME")
    lowest = -tf.nn.max_pool2d(-tf.where(void, 65536.0, labels), size, 1, "SAME")
    edge = tf.logical_and(highest >= 0, tf.not_equal(highest, lowest))
    target = tf.where(void, float(ignore_index), tf.cast(edge, tf.float32))
    return target[0]
