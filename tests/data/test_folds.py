"""k-fold re-splitting and the held-out test split."""

import numpy as np
import pytest

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.folds import FoldSplit, assign_folds
from animalseg.data.module import DataModule
from animalseg.data.synthetic import SyntheticDataset
from animalseg.errors import ConfigError, DataError


class Listed(SegmentationDataset):
    """Tiny 4x4 images: ``samples[split]`` = list of (image value, classes in the mask)."""

    def __init__(self, samples):
        super().__init__(["bg", "cat", "dog"], [(0, 0, 0), (1, 1, 1), (2, 2, 2)])
        self.samples = samples

    def ids(self, split):
        return [f"{split}{i}" for i in range(len(self.samples.get(split, [])))]

    def load_uncached(self, split, index):
        value, classes = self.samples[split][index]
        mask = np.zeros((4, 4), np.uint8)
        for position, label in enumerate(classes):
            mask[position] = label
        return np.full((4, 4, 3), value, np.uint8), mask


def _dataset():
    # 12 cat images, 6 dog images, 6 with both; image 100 appears in train and val (a duplicate)
    train = [(i, [1]) for i in range(12)] + [(20 + i, [2]) for i in range(6)] + [(100, [1, 2])]
    val = [(40 + i, [1, 2]) for i in range(5)] + [(100, [1, 2])]
    return Listed({"train": train, "val": val, "test": [(200, [1])]})


def test_folds_partition_train_and_val_deterministically_and_stratified():
    dataset = _dataset()
    folds = assign_folds(dataset, 3, seed=0)
    members = [m for fold in folds for m in fold]
    assert sorted(members) == sorted((s, i) for s in ("train", "val") for i in range(len(dataset.ids(s))))
    assert folds == assign_folds(dataset, 3, seed=0)
    assert folds != assign_folds(dataset, 3, seed=1)
    for fold in folds:  # each class combination spread evenly: 12 cat-only → 4 per fold, 6 dog-only → 2
        kinds = [tuple(np.unique(dataset.load(*m)[1]).tolist()) for m in fold]
        assert kinds.count((0, 1)) == 4 and kinds.count((0, 2)) == 2


def test_identical_images_stay_in_one_fold():
    dataset = _dataset()
    for seed in range(5):
        folds = assign_folds(dataset, 3, seed)
        copies = [f for f, fold in enumerate(folds) for m in fold if dataset.load(*m)[0][0, 0, 0] == 100]
        assert len(copies) == 2 and len(set(copies)) == 1


def test_fold_split_validates_on_one_fold_and_keeps_the_test_split():
    dataset = _dataset()
    splits = [FoldSplit(dataset, 3, fold) for fold in range(3)]
    vals = [set(s.ids("val")) for s in splits]
    assert set.union(*vals) == set(dataset.ids("train")) | set(dataset.ids("val"))
    assert all(not (a & b) for i, a in enumerate(vals) for b in vals[i + 1 :])
    for split in splits:
        assert not set(split.ids("train")) & set(split.ids("val"))
        assert split.ids("test") == ["test0"] and split.load("test", 0)[0][0, 0, 0] == 200
        image, _ = split.load("val", 0)
        source = split.members["val"][0]
        assert np.array_equal(image, dataset.load(*source)[0])


@pytest.mark.parametrize(
    ("folds", "fold", "key"), [(1, 0, "data.folds=1"), (3, 3, "data.fold=3"), (50, 0, "data.folds=50")]
)
def test_bad_fold_settings_name_the_key(folds, fold, key):
    with pytest.raises(ConfigError, match=key):
        FoldSplit(_dataset(), folds, fold)


def test_the_test_split_is_found_or_named():
    assert DataModule(SyntheticDataset(32, 4, 4)).test_split is None
    assert DataModule(SyntheticDataset(32, 4, 4, test_size=2)).test_split == "test"
    with pytest.raises(DataError, match="data.test_split=holdout"):
        DataModule(SyntheticDataset(32, 4, 4), test_split="holdout")
