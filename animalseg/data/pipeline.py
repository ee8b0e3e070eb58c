"""tf.data pipelines: training batches (scale, pad, crop, flip, augmentation) and val samples.

Every random choice is a stateless function of (seed, epoch, position), so the data order and the
augmentation of any epoch are reproducible and a resumed run sees exactly what it would have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf

from animalseg.data.boundary import boundary_target
from animalseg.data.crops import crop_schedule_problem
from animalseg.data.dataset import SegmentationDataset

# augment(image float32 HxWx3 in [0, 255], mask int32 HxW, seed int32[2]) -> (image, mask)
Augmenter = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class AugmentationPolicy(Protocol):
    """What the pipeline needs of an augmentation (``animalseg.augment.Augmentation``): the
    random rescale range and flip it applies around its crop, then the extra ops as a call."""

    scale_range: Sequence[float]
    hflip: bool
    ops: Sequence

    def __call__(self, image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]: ...


MAX_EPOCHS = 1_000_000


def load_sample(dataset: SegmentationDataset, split: str, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode sample ``index`` of ``split`` inside a tf.data graph (Python decode, cached)."""

    def _load(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dataset.load(split, int(i))

    image, mask = tf.numpy_function(_load, [index], [tf.uint8, tf.uint8], stateful=False)
    image.set_shape([None, None, 3])
    mask.set_shape([None, None])
    return image, mask


def scaled_size(shape: tf.Tensor, scale: tf.Tensor | float, base_size: int | None) -> tf.Tensor:
    """The (height, width) training resizes an image of ``shape`` to: ``scale`` times its size
    with the long side at ``base_size`` (native size when ``None``), rounded, at least 1 pixel."""
    shape = tf.cast(shape, tf.float32)
    if base_size is not None:
        scale = scale * float(base_size) / tf.reduce_max(shape)
    return tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)


def resize_mask(mask: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """A (H, W) mask resized by nearest neighbour (class indices are not blended)."""
    return tf.image.resize(mask[..., None], size, method="nearest")[..., 0]


def mask_at_base_size(mask: np.ndarray, base_size: int | None) -> np.ndarray:
    """A mask at the scale training sees before its random rescale (long side ``base_size``):
    class statistics must be taken there, or small photos weigh less than in training."""
    if base_size is None:
        return mask
    return resize_mask(tf.constant(mask), scaled_size(mask.shape, 1.0, base_size)).numpy()


def random_scale_crop_flip(
    image: tf.Tensor,
    mask: tf.Tensor,
    seed: tf.Tensor,
    crop_size: int | tf.Tensor,
    scale_range: tuple[float, float],
    hflip: bool,
    ignore_index: int,
    base_size: int | None = None,
    antialias: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Random rescale, pad (image 0, mask ``ignore_index``) and random crop to a square, h-flip.

    The scale is relative to the image resized so its long side is ``base_size`` (native size
    when ``None``), the size evaluation predicts at; ``antialias`` filters the image's downscale.
    A ``crop_size`` tensor (a crop schedule's side for the sample's epoch) leaves the side unknown
    to the graph.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
    size = scaled_size(tf.shape(image)[:2], scale, base_size)
    image = tf.image.resize(image, size, method="bilinear", antialias=antialias)
    mask = resize_mask(mask, size)
    pad_h = tf.maximum(crop_size - size[0], 0)
    pad_w = tf.maximum(crop_size - size[1], 0)
    paddings = [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2]]
    image = tf.pad(image, [*paddings, [0, 0]])
    mask = tf.pad(mask, paddings, constant_values=ignore_index)
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    top = tf.random.stateless_uniform([], seeds[1], 0, height - crop_size + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, width - crop_size + 1, dtype=tf.int32)
    image = image[top : top + crop_size, left : left + crop_size]
    mask = mask[top : top + crop_size, left : left + crop_size]
    if hflip:
        flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        mask = tf.cond(flip, lambda: mask[:, ::-1], lambda: mask)
    side = None if tf.is_tensor(crop_size) else int(crop_size)
    image.set_shape([side, side, 3])
    mask.set_shape([side, side])
    return image, mask


def crop_side_for_epoch(crop_size: int, schedule: Sequence[tuple[int, int]]) -> Callable[[tf.Tensor], tf.Tensor]:
    """The crop side at an epoch (int64 tensor, from 0) under ``schedule``: ``(first epoch, side)``
    pairs in increasing epoch order, with ``crop_size`` before the first."""
    if (problem := crop_schedule_problem(schedule)) is not None:
        raise ValueError(f"crop_schedule={schedule!r}: {problem}")
    starts = tf.constant([0, *(int(epoch) for epoch, _ in schedule)], tf.int64)
    sides = tf.constant([int(crop_size), *(int(side) for _, side in schedule)], tf.int32)
    return lambda epoch: sides[tf.searchsorted(starts, [epoch], side="right")[0] - 1]


def train_pipeline(
    dataset: SegmentationDataset,
    crop_size: int,
    batch_size: int,
    seed: int,
    target_names: tuple[str, str],
    scale_range: tuple[float, float] = (0.75, 1.25),
    hflip: bool = True,
    augment: Augmenter | None = None,
    boundary_width: int = 1,
    start_epoch: int = 0,
    split: str = "train",
    base_size: int | None = None,
    antialias: bool = False,
    crop_schedule: Sequence[tuple[int, int]] = (),
) -> tf.data.Dataset:
    """Endless training batches from ``start_epoch`` on, one epoch = ``len(split) // batch``.

    ``crop_schedule``: ``(first epoch, side)`` pairs that change the crop side from those epochs on
    (progressive resizing: small crops first); a batch never spans two epochs, so each batch has one
    side, and the side follows from the epoch alone, so a resumed run crops as the uninterrupted one.

    Yields (image float32 (B, S, S, 3) in [0, 255], {semantic: int32 (B, S, S), boundary: float32
    (B, S, S, 1)}): targets keyed by ``target_names``, the model's (semantic, boundary) output names.
    """
    count = len(dataset.ids(split))
    if count < batch_size:
        raise ValueError(f"the {split} split has {count} images, fewer than one batch of {batch_size}")
    ignore = dataset.ignore_index
    scale_range = (float(scale_range[0]), float(scale_range[1]))
    side_at = crop_side_for_epoch(crop_size, crop_schedule) if crop_schedule else None

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        positions = epoch * count + tf.range(count, dtype=tf.int64)
        used = (count // batch_size) * batch_size  # whole batches only: epochs stay aligned
        return tf.data.Dataset.from_tensor_slices((order[:used], positions[:used]))

    def prepare(index: tf.Tensor, position: tf.Tensor):
        image, mask = load_sample(dataset, split, index)
        sample_seed = tf.stack([tf.constant(seed, tf.int64), position])
        geometry_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(sample_seed, 2))
        image, mask = random_scale_crop_flip(
            tf.cast(image, tf.float32),
            tf.cast(mask, tf.int32),
            geometry_seed,
            crop_size if side_at is None else side_at(position // count),
            scale_range,
            hflip,
            ignore,
            base_size,
            antialias,
        )
        if augment is not None:
            image, mask = augment(image, mask, augment_seed)
        semantic, boundary = target_names
        targets = {semantic: mask, boundary: boundary_target(mask, boundary_width, ignore)}
        return image, targets

    options = tf.data.Options()
    options.deterministic = True
    # Multi-worker: every worker builds the same batches and keeps its replicas' share of each
    # (there are no files to shard), so a step sees the same global batch as on one device.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.range(start_epoch, MAX_EPOCHS)
        .flat_map(epoch_order)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


def steps_per_epoch(dataset: SegmentationDataset, batch_size: int, split: str = "train") -> int:
    """Full batches in one pass over ``split`` (the remainder is dropped, reshuffled next epoch)."""
    return len(dataset.ids(split)) // batch_size
