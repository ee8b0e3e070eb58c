"""Auto class weights count pixels at the scale training sees (long side resized to base_size)."""

import numpy as np
import pytest
import tensorflow as tf

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.pipeline import random_scale_crop_flip
from animalseg.data.stats import class_statistics, class_weights, pixel_counts, resolve_class_weights
from animalseg.data.synthetic import SyntheticDataset
from animalseg.errors import ConfigError
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

    counts, image_pixels = class_statistics(VOCDataset(ANIMALS, cache=False), "train", base_size=256)
    weights = class_weights(counts, "median_share")
    print(f"median-frequency weights at base_size 256: {np.round(weights, 3).tolist()}")
    assert 0.9 < weights[1] < 1.3  # cheetah; counted at native size (224 vs 512 px photos) it was 5.81
    cited = class_weights(counts, "median", image_pixels)
    print(f"cited median-frequency weights at base_size 256: {np.round(cited, 3).tolist()}")
    assert 0.55 < cited[0] < 0.7  # background: 0.10 as a share of all pixels


def test_the_checker_shows_the_weights_training_uses():
    from animalseg.data.check import check_dataset, format_report

    data = TwoSizes()
    report = check_dataset(data, base_size=20)
    np.testing.assert_array_equal(report.train_pixels, pixel_counts(data, "train", base_size=20))
    np.testing.assert_array_equal(report.pixels["train"], pixel_counts(data, "train", base_size=None))
    text = format_report(report, data)
    np.testing.assert_array_equal(report.train_image_pixels, class_statistics(data, "train", base_size=20)[1])
    weights = class_weights(report.train_pixels, "median", report.train_image_pixels)
    assert "median frequency at data.base_size=20" in text
    assert text.splitlines()[-1].split()[-1] == f"{weights[-1]:.3f}"


class HandMade(TwoSizes):
    """Two 10x10 photos, one animal each: 60 background + 40 cat, and 70 background + 30 dog."""

    def __init__(self):
        SegmentationDataset.__init__(self, ["bg", "cat", "dog"], [(0, 0, 0), (1, 1, 1), (2, 2, 2)])
        cat, dog = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
        cat[:4] = 1
        dog[:3] = 2
        dog[9, 0] = 255  # not labelled: counts in no class and in no image's pixels
        dog[9, 1] = 1
        self.masks = [cat, dog]


def test_auto_is_the_cited_median_frequency_balancing(tmp_path):
    data = HandMade()
    # f_c = pixels of c / pixels of the images containing c: bg 128/199, cat 41/199, dog 30/99
    frequency = np.array([128 / 199, 41 / 199, 30 / 99])
    expected = np.median(frequency) / frequency
    np.testing.assert_allclose(resolve_class_weights("auto", data, tmp_path, base_size=None), expected)
    assert expected[0] == pytest.approx(0.471, abs=1e-3)
    # the share of all pixels (auto_share): background 128/199 again, but cat 41/199 and dog 30/199
    share = np.array([128, 41, 30]) / 199
    np.testing.assert_allclose(resolve_class_weights("auto_share", data, tmp_path, base_size=None), 41 / 199 / share)


def test_auto_on_one_animal_per_photo():
    """The animals case: each photo one animal on background, so the animals' f_c is their share
    of their own photos and background is weighted near its median, not 0.1."""
    counts = np.array([1300, 400, 300])
    image_pixels = np.array([2000, 1000, 1000])
    np.testing.assert_allclose(class_weights(counts, "median", image_pixels), [0.4 / 0.65, 1.0, 0.4 / 0.3])
    np.testing.assert_allclose(class_weights(counts, "median_share"), [0.2 / 0.65, 1.0, 0.2 / 0.15])


def test_unknown_auto_setting_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^loss.class_weights=median: unknown; .* auto, auto_share, auto_inverse$"):
        resolve_class_weights("median", TwoSizes(), tmp_path, base_size=None)


def test_the_cache_is_keyed_on_the_masks(tmp_path):
    """Datasets whose masks differ never share cached weights; equal ones do."""
    small = {"image_size": 32, "train_size": 6, "val_size": 2}
    default = resolve_class_weights("auto_inverse", SyntheticDataset(**small), tmp_path, base_size=None)
    for changed in ({"seed": 1}, {"image_size": 48}, {"max_objects": 1}):
        dataset = SyntheticDataset(**{**small, **changed})
        expected = class_weights(pixel_counts(dataset), "inverse")
        np.testing.assert_allclose(resolve_class_weights("auto_inverse", dataset, tmp_path, base_size=None), expected)
    assert len(list((tmp_path / "cache").glob("class_weights-*.json"))) == 4
    assert resolve_class_weights("auto_inverse", SyntheticDataset(**small), tmp_path, base_size=None) == default


def test_the_cache_is_keyed_on_the_fold(tmp_path):
    """Each fold of each source has its own weights (the ids of a fold alone do not tell)."""
    from animalseg.data.folds import FoldSplit

    for seed, fold in ((0, 0), (0, 1), (1, 0)):
        dataset = FoldSplit(SyntheticDataset(image_size=32, train_size=6, val_size=2, seed=seed), folds=2, fold=fold)
        np.testing.assert_allclose(
            resolve_class_weights("auto_inverse", dataset, tmp_path, base_size=None),
            class_weights(pixel_counts(dataset), "inverse"),
        )
    assert len(list((tmp_path / "cache").glob("class_weights-*.json"))) == 3


def test_the_default_fingerprint_follows_the_mask_contents():
    data = TwoSizes()
    before = data.masks_fingerprint("train")
    data.masks[2] = data.masks[2].copy()
    assert data.masks_fingerprint("train") == before
    data.masks[2][5, 5] = 1 - data.masks[2][5, 5]
    data._cache.clear()
    assert data.masks_fingerprint("train") != before
