"""Auto class weights count pixels at the scale training sees (long side resized to base_size)."""

import numpy as np
import pytest
import tensorflow as tf

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.pipeline import random_scale_crop_flip
from animalseg.data.stats import class_weights, pixel_counts, resolve_class_weights
from tests.helpers import ANIMALS, requires_animals


class TwoSizes(SegmentationDataset):
    """A small all-square photo and a large mostly-background one, as cheetah (224) vs the rest (512)."""

    def __init__(self):
        super().__init__(["bg", "square"], [(0, 0, 0), (255, 255, 255)])
        small = np.ones((10, 10), np.uint8)
        large = np.zeros((40, 20), np.uint8)
        odd = np.zeros((13, 7), np.uint8)
        odd[2:9, 1:4] = 1
        odd[0, :] = 255
        self.masks = [small, large, odd]

    def ids(self, split):
        return [str(i) for i in range(len(self.masks))]

    def load_uncached(self, split, index):
        mask = self.masks[index]
        return np.zeros((*mask.shape, 3), np.uint8), mask


def test_counts_are_taken_at_the_training_scale():
    data = TwoSizes()
    data.masks = data.masks[:2]
    np.testing.assert_array_equal(pixel_counts(data, "train", base_size=None), [800, 100])
    # long sides to 20: the 10x10 square doubles (400 px), the 40x20 photo halves (20x10 = 200 px)
    np.testing.assert_array_equal(pixel_counts(data, "train", base_size=20), [200, 400])


@pytest.mark.parametrize("base_size", [20, 9, 33])
def test_counts_equal_what_the_training_pipeline_yields(base_size):
    data = TwoSizes()
    expected = np.zeros(2, np.int64)
    for index in range(len(data.masks)):
        image, mask = data.load("train", index)
        _, out = random_scale_crop_flip(  # scale 1, no flip; the crop only pads (ignore)
            tf.cast(image, tf.float32),
            tf.cast(mask, tf.int32),
            tf.constant([0, 0], tf.int64),
            base_size,
            (1.0, 1.0),
            False,
            255,
            base_size,
        )
        out = out.numpy()
        expected += np.bincount(out[out != 255].ravel(), minlength=2)
    np.testing.assert_array_equal(pixel_counts(data, "train", base_size=base_size), expected)


def test_the_cache_is_keyed_on_base_size(tmp_path):
    data = TwoSizes()
    native = resolve_class_weights("auto", data, tmp_path, base_size=None)
    scaled = resolve_class_weights("auto", data, tmp_path, base_size=20)
    assert native != scaled
    assert len(list((tmp_path / "cache").glob("class_weights-*.json"))) == 2
    assert resolve_class_weights("auto", data, tmp_path, base_size=20) == scaled


@pytest.mark.real_data
@requires_animals
def test_cheetah_weight_at_the_animals_training_scale():
    from animalseg.data.voc import VOCDataset

    counts = pixel_counts(VOCDataset(ANIMALS, cache=False), "train", base_size=256)
    weights = class_weights(counts, "median")
    print(f"median-frequency weights at base_size 256: {np.round(weights, 3).tolist()}")
    assert 0.9 < weights[1] < 1.3  # cheetah; counted at native size (224 vs 512 px photos) it was 5.81


def test_the_checker_shows_the_weights_training_uses():
    from animalseg.data.check import check_dataset, format_report

    data = TwoSizes()
    report = check_dataset(data, base_size=20)
    np.testing.assert_array_equal(report.train_pixels, pixel_counts(data, "train", base_size=20))
    np.testing.assert_array_equal(report.pixels["train"], pixel_counts(data, "train", base_size=None))
    text = format_report(report, data)
    weights = class_weights(report.train_pixels, "median")
    assert "median frequency at data.base_size=20" in text
    assert text.splitlines()[-1].split()[-1] == f"{weights[-1]:.3f}"
