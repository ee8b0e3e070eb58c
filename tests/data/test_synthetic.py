import numpy as np

from animalseg.data.synthetic import CLASS_NAMES, SyntheticDataset


def test_synthetic_is_deterministic_and_well_formed():
    first = SyntheticDataset(image_size=48, train_size=6, val_size=3, seed=3, cache=False)
    second = SyntheticDataset(image_size=48, train_size=6, val_size=3, seed=3, cache=False)
    assert first.num_classes == 7 and first.class_names[0] == "background"
    assert len(first.ids("train")) == 6 and len(first.ids("val")) == 3
    for split in ("train", "val"):
        for index in range(len(first.ids(split))):
            image, mask = first.load(split, index)
            again_image, again_mask = second.load(split, index)
            np.testing.assert_array_equal(image, again_image)
            np.testing.assert_array_equal(mask, again_mask)
            assert image.shape == (48, 48, 3) and image.dtype == np.uint8
            assert mask.shape == (48, 48) and mask.max() < len(CLASS_NAMES)
            assert (mask > 0).any() and (mask == 0).any()


def test_splits_and_seeds_differ():
    data = SyntheticDataset(image_size=32, train_size=2, val_size=2, seed=0)
    other = SyntheticDataset(image_size=32, train_size=2, val_size=2, seed=1)
    assert not np.array_equal(data.load("train", 0)[0], data.load("val", 0)[0])
    assert not np.array_equal(data.load("train", 0)[0], other.load("train", 0)[0])


def test_every_class_appears_in_a_modest_split():
    data = SyntheticDataset(image_size=32, train_size=40, val_size=1)
    seen = set()
    for index in range(40):
        seen.update(np.unique(data.load("train", index)[1]).tolist())
    assert seen == set(range(7))
