"""The training recipe: region losses, class weights, augmentation ops and schedules."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from animalseg.augment import Augmentation, ColorJitter, ElasticDeformation, RandomRotation
from animalseg.data.stats import class_weights, resolve_class_weights
from animalseg.errors import ConfigError, DataError
from animalseg.losses import SegmentationLoss, SparseCrossEntropy, SparseFocalLoss
from animalseg.losses.region import SparseDiceLoss, SparseTverskyLoss, WeightedSum
from animalseg.training.schedules import cosine, onecycle, plateau, poly, warmup_step
from tests.fixtures import SquareDataset

BIG = 50.0  # logits this far apart give softmax probabilities of 0 and 1 in float32

HEADS = ("sem_logits", "boundary_logits")


def _logits(labels, classes):
    return (BIG * np.eye(classes)[np.where(labels == 255, 0, labels)]).astype("float32")


def test_dice_is_zero_for_a_perfect_prediction_and_known_for_a_half_one():
    labels = np.array([[[0, 0, 1, 1]]])
    assert float(SparseDiceLoss()(labels, _logits(labels, 2))) == pytest.approx(0.0, abs=1e-6)
    predicted = np.array([[[0, 0, 0, 1]]])  # class 0: dice 2*2/(2+3)=0.8; class 1: 2*1/(2+1)=2/3
    expected = 1 - (0.8 + 2 / 3) / 2
    assert float(SparseDiceLoss()(labels, _logits(predicted, 2))) == pytest.approx(expected, rel=1e-5)


def test_dice_ignores_void_pixels():
    labels = np.array([[[0, 255, 1, 1]]])
    predicted = np.array([[[0, 1, 1, 1]]])  # wrong only on the void pixel
    assert float(SparseDiceLoss()(labels, _logits(predicted, 2))) == pytest.approx(0.0, abs=1e-6)


def test_tversky_weights_false_positives_and_negatives():
    labels = np.array([[[1, 1, 0, 0]]])
    predicted = np.array([[[1, 0, 0, 0]]])
    # class 1: TP 1, FP 0, FN 1; class 0: TP 2, FP 1, FN 0
    alpha, beta = 0.3, 0.7
    index1 = 1 / (1 + alpha * 0 + beta * 1)
    index0 = 2 / (2 + alpha * 1 + beta * 0)
    value = float(SparseTverskyLoss(alpha, beta)(labels, _logits(predicted, 2)))
    assert value == pytest.approx(1 - (index0 + index1) / 2, rel=1e-5)


def test_weighted_sum_and_its_serialisation():
    terms = {"focal": (SparseFocalLoss(alpha=0.75, gamma=2.0), 1.0), "dice": (SparseDiceLoss(), 0.5)}
    loss = SegmentationLoss.from_terms(terms).semantic
    assert isinstance(loss, WeightedSum)
    labels = np.array([[[0, 1, 1, 0]]])
    logits = np.random.default_rng(0).normal(size=(1, 1, 4, 2)).astype("float32")
    expected = float(loss.losses[0](labels, logits)) + 0.5 * float(loss.losses[1](labels, logits))
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(clone(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_class_weights_from_known_counts():
    counts = np.array([600, 100, 300, 0])
    frequencies = counts[:3] / 1000
    median = class_weights(counts, "median_share")
    np.testing.assert_allclose(median[:3], np.median(frequencies) / frequencies)
    assert median[3] == 0
    inverse = class_weights(counts, "inverse")
    assert np.sum(inverse[:3] * frequencies) == pytest.approx(1.0)
    assert inverse[1] / inverse[0] == pytest.approx(6.0)


def test_auto_class_weights_cover_the_whole_split_and_are_cached(tmp_path):
    data = SquareDataset(count=3)  # per image: 77 square pixels of 520
    weights = resolve_class_weights("auto_inverse", data, tmp_path, base_size=None)
    frequency = np.array([443, 77]) / 520
    np.testing.assert_allclose(weights, (1 / frequency) / np.sum(frequency / frequency), rtol=1e-6)
    assert len(list((tmp_path / "cache").glob("class_weights-*.json"))) == 1
    assert resolve_class_weights("auto_inverse", data, tmp_path, base_size=None) == weights
    assert resolve_class_weights([1, 2], data, tmp_path, base_size=None) == [1.0, 2.0]
    with pytest.raises(DataError, match="2 classes"):
        resolve_class_weights([1, 2, 3], data, tmp_path, base_size=None)


def test_class_weights_weight_the_cross_entropy():
    labels = np.array([[[0, 1]]])
    logits = np.zeros((1, 1, 2, 2), "float32")  # CE = log 2 per pixel
    loss = SparseCrossEntropy(class_weights=[1.0, 3.0])
    assert float(loss(labels, logits)) == pytest.approx(np.log(2) * (1 + 3) / 2, rel=1e-5)


def _square_pair(size=64):
    image = np.zeros((size, size, 3), np.float32)
    mask = np.zeros((size, size), np.int32)
    image[20:44, 16:40] = 255.0
    mask[20:44, 16:40] = 1
    return tf.constant(image), tf.constant(mask)


@pytest.mark.parametrize("op", [RandomRotation(30, p=1.0), ElasticDeformation(100, 10, p=1.0), ColorJitter(p=1.0)])
def test_ops_keep_image_and_mask_aligned_and_masks_valid(op):
    image, mask = _square_pair()
    for seed in range(5):
        out_image, out_mask = op(image, mask, tf.constant([seed, 1], tf.int64))
        out_mask = out_mask.numpy()
        assert set(np.unique(out_mask)) <= {0, 1, 255}
        assert out_image.shape == image.shape and out_mask.shape == mask.shape
        square = out_mask == 1
        bright = out_image.numpy().mean(-1) > 127
        assert (square & bright).sum() / max((square | bright).sum(), 1) > 0.85


def test_rotation_fills_uncovered_corners_with_the_ignore_index():
    image, mask = tf.fill([64, 64, 3], 100.0), tf.zeros([64, 64], tf.int32)
    rotate = RandomRotation(30, p=1.0)
    out_image, out_mask = rotate(image, mask, tf.constant([3, 4], tf.int64))
    out_mask = out_mask.numpy()
    if (out_mask == 255).any():  # an angle near 0 uncovers nothing
        assert out_mask[0, 0] == 255 or out_mask[0, -1] == 255
        # uncovered image pixels are 0, or a bilinear blend with 0 on the seam: never the full value
        assert np.all(out_image.numpy()[out_mask == 255] < 100.0)
    assert out_mask[32, 32] == 0


def test_augmentation_is_deterministic_for_a_seed_and_respects_p():
    image, mask = _square_pair()
    policy = Augmentation(ops=[RandomRotation(30, 0.5), ColorJitter(p=0.5), ElasticDeformation(p=0.5)])
    first = policy(image, mask, tf.constant([1, 2], tf.int64))
    again = policy(image, mask, tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    never = RandomRotation(30, p=0.0)(image, mask, tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(never[1].numpy(), mask.numpy())


def _rate(schedule, step):
    rate = schedule.learning_rate
    return float(rate(step)) if callable(rate) else float(rate)


def test_warmup_step_schedule_at_chosen_epochs():
    schedule = warmup_step(5e-4, steps_per_epoch=10, warmup_epochs=5, milestones=[50, 100], factors=[0.5, 0.1])
    assert _rate(schedule, 0) == pytest.approx(5e-4 / 50)
    assert _rate(schedule, 24) == pytest.approx(5e-4 * 25 / 50)
    assert _rate(schedule, 49) == pytest.approx(5e-4)
    assert _rate(schedule, 499) == pytest.approx(5e-4)
    assert _rate(schedule, 500) == pytest.approx(2.5e-4)
    assert _rate(schedule, 1000) == pytest.approx(5e-5)


def test_cosine_onecycle_and_plateau():
    schedule = cosine(1e-3, steps_per_epoch=10, epochs=11, warmup_epochs=1)
    assert _rate(schedule, 10) == pytest.approx(1e-3)
    assert _rate(schedule, 110) == pytest.approx(0.0, abs=1e-9)
    held = cosine(1e-3, steps_per_epoch=10, epochs=30, warmup_epochs=1, decay_fraction=0.5, final_fraction=0.1)
    assert _rate(held, 10) == pytest.approx(1e-3)
    assert _rate(held, 80) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 70 / 140)))
    assert _rate(held, 150) == _rate(held, 299) == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="schedule.decay_fraction=0"):
        cosine(1e-3, steps_per_epoch=10, epochs=30, decay_fraction=0)
    cycle = onecycle(1e-2, steps_per_epoch=10, epochs=10, pct_start=0.3)
    assert _rate(cycle, 0) == pytest.approx(1e-2 / 25)
    assert _rate(cycle, 30) == pytest.approx(1e-2, rel=1e-3)
    assert _rate(cycle, 100) == pytest.approx(1e-2 / 1e4, rel=1e-2)
    reduce = plateau(1e-3, steps_per_epoch=10, patience=2)
    assert _rate(reduce, 0) == 1e-3 and reduce.callbacks[0].monitor == "val_miou"


def test_poly_warms_up_then_decays_to_its_floor_and_survives_saving(tmp_path):
    schedule = poly(1e-3, steps_per_epoch=10, epochs=11, warmup_epochs=1, power=2.0)
    assert _rate(schedule, 0) == 0.0
    assert _rate(schedule, 5) == pytest.approx(0.5e-3)
    assert _rate(schedule, 10) == pytest.approx(1e-3)
    assert _rate(schedule, 60) == pytest.approx(1e-3 * 0.5**2)  # a quarter by mid-decay
    assert _rate(schedule, 110) == _rate(schedule, 200) == pytest.approx(0.0, abs=1e-12)
    floor = poly(1e-3, steps_per_epoch=10, epochs=10, power=0.9, final_fraction=0.1)
    assert _rate(floor, 0) == pytest.approx(1e-3)
    assert _rate(floor, 50) == pytest.approx(1e-4 + 0.9e-3 * 0.5**0.9)
    with pytest.raises(ConfigError, match="schedule.power=0"):
        poly(1e-3, steps_per_epoch=10, epochs=10, power=0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(schedule.learning_rate), "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=2, epochs=3, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").optimizer
    assert int(loaded.iterations) == 6
    assert float(loaded.learning_rate) == pytest.approx(_rate(schedule, 6))


def test_advanced_augmentation_runs_inside_the_tf_data_pipeline():
    from hydra.utils import instantiate

    from animalseg.data.module import DataModule
    from tests.helpers import compose_config

    policy = instantiate(compose_config(["augmentation=advanced"]).augmentation)
    data = DataModule(SquareDataset(size=40, count=4), crop_size=32, batch_size=2)
    for images, targets in data.train_data(policy, seed=3, target_names=HEADS).take(4):
        assert images.shape == (2, 32, 32, 3)
        assert set(np.unique(targets["sem_logits"].numpy())) <= {0, 1, 255}
