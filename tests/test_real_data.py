"""The real animals set at ../shared/datasets/animals (skipped when absent; CI has it)."""

import numpy as np
import pytest
from hydra.utils import instantiate

from animalseg.data.check import check_dataset
from animalseg.data.voc import VOCDataset
from animalseg.run import run
from tests.helpers import ANIMALS, TINY_PARTS, compose_config

pytestmark = [pytest.mark.real_data, pytest.mark.skipif(not ANIMALS.is_dir(), reason=f"{ANIMALS} is absent")]
CLASSES = ["background", "cheetah", "fox", "hyena", "lion", "tiger", "wolf"]


@pytest.fixture(scope="module")
def animals():
    return VOCDataset(ANIMALS, cache=False)


def test_counts_and_classes(animals):
    assert animals.class_names == CLASSES
    assert len(animals.ids("train")) == 354 and len(animals.ids("val")) == 96
    assert not set(animals.ids("train")) & set(animals.ids("val"))


def test_every_mask_maps_cleanly_and_the_duplicate_pair_is_found(animals):
    report = check_dataset(animals)
    assert report.counts == {"train": 354, "val": 96}
    assert set(report.sizes["train"]) == {"512x512", "224x224"}
    assert all(report.pixels["train"] > 0)
    # the only problems: the one photo that is in train and (renamed) in val
    assert len(report.problems) == 2
    for problem in report.problems:
        assert "train fox/00000061_512resized = val fox/00000103_512resized" in problem
    background = report.pixels["train"][0] / report.pixels["train"].sum()
    assert 0.55 < background < 0.7


def test_rgba_and_palette_photos_load_as_rgb(animals):
    image, mask = animals.load("train", 0)
    assert image.dtype == np.uint8 and image.shape == (*mask.shape, 3)


@pytest.mark.slow
def test_one_epoch_smoke_training(tmp_path):
    cfg = compose_config(
        [
            "data=animals",
            *TINY_PARTS,
            "data.crop_size=64",
            "data.batch_size=16",
            "data.eval_size=64",
            f"logger.tracking_uri=sqlite:///{tmp_path}/m.db",
        ]
    )
    data = instantiate(cfg.data)
    assert data.steps_per_epoch == 354 // 16
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert 0.0 < metrics["val_pixel_accuracy"] <= 1.0
    assert "val_iou_background" in metrics
