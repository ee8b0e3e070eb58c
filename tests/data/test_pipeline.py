import numpy as np
import pytest
import tensorflow as tf

from animalseg.augment import Augmentation
from animalseg.data.boundary import boundary_target
from animalseg.data.module import DataModule
from animalseg.data.pipeline import random_scale_crop_flip
from animalseg.data.synthetic import SyntheticDataset
from tests.fixtures import SquareDataset

HEADS = ("sem_logits", "boundary_logits")


def test_small_images_are_padded_with_zero_and_ignore():
    image = tf.fill([10, 12, 3], 200.0)
    mask = tf.ones([10, 12], tf.int32)
    out_image, out_mask = random_scale_crop_flip(image, mask, tf.constant([1, 2], tf.int64), 32, (1.0, 1.0), False, 255)
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    out_mask = out_mask.numpy()
    assert (out_mask == 1).sum() == 120 and (out_mask == 255).sum() == 32 * 32 - 120
    assert np.all(out_image.numpy()[out_mask == 255] == 0)


def test_training_batches_keep_image_and_mask_aligned():
    data = DataModule(SquareDataset(), crop_size=16, batch_size=2)
    exact = data.train_data(Augmentation(scale_range=(1.0, 1.0), hflip=True), seed=5, target_names=HEADS)
    for images, targets in exact.take(6):
        masks = targets["sem_logits"].numpy()
        bright = images.numpy().mean(-1) > 127
        assert set(np.unique(masks)) <= {0, 1, 255}
        assert np.array_equal(bright, masks == 1)
    scaled = data.train_data(Augmentation(scale_range=(0.7, 1.3), hflip=True), seed=5, target_names=HEADS)
    for images, targets in scaled.take(6):
        square = targets["sem_logits"].numpy() == 1
        bright = images.numpy().mean(-1) > 127
        union = (square | bright).sum()
        # bilinear image vs nearest mask may differ by a pixel on the square's border only
        assert union == 0 or (square & bright).sum() / union > 0.7


def test_order_and_augmentation_are_reproducible_and_resumable():
    dataset = SyntheticDataset(image_size=32, train_size=8, val_size=1)
    data = DataModule(dataset, crop_size=32, batch_size=4)
    aug = Augmentation(scale_range=(0.75, 1.25), hflip=True)
    steps = data.steps_per_epoch
    full = [b[0].numpy() for b in data.train_data(aug, seed=7, target_names=HEADS).take(3 * steps)]
    again = [b[0].numpy() for b in data.train_data(aug, seed=7, target_names=HEADS).take(3 * steps)]
    resumed = [b[0].numpy() for b in data.train_data(aug, seed=7, target_names=HEADS, start_epoch=2).take(steps)]
    other = [b[0].numpy() for b in data.train_data(aug, seed=8, target_names=HEADS).take(steps)]
    for a, b in zip(full, again, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(full[2 * steps :], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], other[0])
    assert not np.array_equal(full[0], full[steps])  # a new order/augmentation each epoch


def test_boundary_target_marks_class_changes_and_keeps_void():
    mask = np.zeros((6, 6), np.int32)
    mask[:, 3:] = 1
    mask[0, 0] = 255
    target = boundary_target(tf.constant(mask), width=1).numpy()[..., 0]
    assert target.shape == (6, 6)
    assert np.all(target[1:, 2:4] == 1)
    assert np.all(target[:, :2][1:] == 0) and np.all(target[:, 5] == 0)
    assert target[0, 0] == 255
    wide = boundary_target(tf.constant(mask), width=2).numpy()[..., 0]
    assert np.all(wide[1:, 1:5] == 1)


def test_antialias_filters_the_training_and_the_prediction_downscale():
    """data.antialias: one setting for training's resize and evaluation's / prediction's."""
    from types import SimpleNamespace

    from animalseg.inference import InferenceSettings, Predictor

    noise = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    mask = tf.zeros([64, 64], tf.int32)
    seed = tf.constant([1, 2], tf.int64)
    for antialias in (False, True):
        image, _ = random_scale_crop_flip(noise, mask, seed, 32, (1.0, 1.0), False, 255, 32, antialias)
        expected = tf.image.resize(noise, (32, 32), method="bilinear", antialias=antialias)
        np.testing.assert_allclose(image.numpy(), expected.numpy(), atol=1e-4)
    seen = []

    def identity(inputs):
        seen.append(inputs)
        return {"sem_logits": inputs[..., :2]}

    for antialias in (False, True):
        model = SimpleNamespace(output_stride=4, semantic_head="sem_logits", predict_on_batch=identity)
        Predictor(model, InferenceSettings(size=32, antialias=antialias)).outputs(noise[None])
        expected = tf.image.resize(noise[None], (32, 32), method="bilinear", antialias=antialias)
        np.testing.assert_allclose(seen[-1], expected.numpy(), atol=1e-3)
    assert not np.allclose(seen[0], seen[1], atol=1.0)  # the filter changes what the model sees
    module = DataModule(SquareDataset(), crop_size=16, batch_size=2, base_size=16, antialias=True)
    assert module.antialias


def test_a_crop_schedule_changes_the_side_from_its_epochs_and_a_resume_crops_alike():
    dataset = SyntheticDataset(image_size=64, train_size=8, val_size=1)
    data = DataModule(dataset, crop_size=32, crop_schedule=[[1, 48], [3, 64]], batch_size=4)
    aug = Augmentation(scale_range=(0.75, 1.25), hflip=True)
    steps = data.steps_per_epoch
    batches = list(data.train_data(aug, seed=3, target_names=HEADS).take(4 * steps))
    sides = [images.shape[1:3] for images, _ in batches]
    assert sides == [(32, 32)] * steps + [(48, 48)] * 2 * steps + [(64, 64)] * steps
    assert all(targets["sem_logits"].shape[1:] == images.shape[1:3] for images, targets in batches)
    resumed = list(data.train_data(aug, seed=3, target_names=HEADS, start_epoch=2).take(2 * steps))
    for (a, _), (b, _) in zip(batches[2 * steps :], resumed, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match=r"its first epochs \[3, 1\] must be strictly increasing"):
        DataModule(dataset, crop_size=32, crop_schedule=[[3, 64], [1, 48]])
