"""The dataset checker and bad data stopping a run cleanly; training on a VOC root."""

import os
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from animalseg.data.dataset import SegmentationDataset
from animalseg.inference import InferenceSettings
from animalseg.training.evaluation import Evaluator
from tests.fixtures import write_animals_like, write_voc_root
from tests.helpers import ROOT, TINY, TINY_PARTS


def _run(script, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], env=env, capture_output=True, text=True, timeout=600
    )


def _break(root):
    """Every kind of problem the checker must name, in one colour-mask dataset."""
    cat = root / "cat"
    (cat / "SegmentationClass" / "cat_000.png").unlink()  # missing mask
    (cat / "JPEGImages" / "cat_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # unreadable image
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(cat / "SegmentationClass" / "cat_002.png")  # size
    dog = root / "dog"
    mask = np.array(Image.open(dog / "SegmentationClass" / "dog_000.png"))
    mask[:3, :3] = (9, 9, 9)
    Image.fromarray(mask).save(dog / "SegmentationClass" / "dog_000.png")  # unknown colour on 9 pixels
    (dog / "JPEGImages" / "dog_002.png").write_bytes((dog / "JPEGImages" / "dog_001.png").read_bytes())
    (dog / "ImageSets" / "Segmentation" / "train.txt").write_text("dog_000\ndog_001\ndog_001\ndog_003\n")
    return root


@pytest.mark.slow
def test_check_dataset_reports_every_problem_with_its_file(tmp_path):
    root = _break(write_animals_like(tmp_path / "animals"))
    result = _run("scripts/check_dataset.py", "data=animals", f"data.root={root}")
    assert result.returncode == 1, result.stderr[-2000:]
    out = result.stdout
    assert "cat_000.png: mask of 'cat/cat_000' (train) not found" in out
    assert "cat_001.png: unreadable image" in out
    assert "cat_002.png: image is 50x30 but its mask is 10x10" in out
    assert "dog_000.png: unknown mask colour (9, 9, 9) on 9 pixels" in out
    assert "dog/dog_001: listed 2 times in 'train'" in out
    assert "dog/dog_003: listed in both 'train' and 'val'" in out
    assert "byte-identical images across train and val: train dog/dog_001 = val dog/dog_002" in out
    assert "pixel-identical images across train and val" in out
    assert "weight" in out and "background" in out


@pytest.mark.slow
def test_a_clean_dataset_passes_and_a_missing_root_is_named(tmp_path):
    root = write_voc_root(tmp_path / "voc")
    result = _run("scripts/check_dataset.py", "data=voc", f"data.root={root}", "data.dataset.class_names=pascal_voc")
    assert result.returncode == 0 and "no problems found" in result.stdout
    missing = _run("scripts/check_dataset.py", "data=voc", f"data.root={tmp_path / 'nope'}")
    assert missing.returncode == 2 and "data.root" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_bad_data_stops_a_run_cleanly_and_keeps_earlier_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    good = _run("train.py", *TINY, f"hydra.run.dir={tmp_path / 'good'}", f"logger.tracking_uri={uri}")
    assert good.returncode == 0, good.stderr[-2000:]
    root = write_animals_like(tmp_path / "animals")
    (root / "cat" / "JPEGImages" / "cat_000.png").unlink()
    bad = _run(
        "train.py",
        "data=animals",
        f"data.root={root}",
        *TINY_PARTS,
        f"hydra.run.dir={tmp_path / 'bad'}",
        f"logger.tracking_uri={uri}",
    )
    assert bad.returncode == 2 and "cat_000.{jpg,jpeg,png}: image of 'cat/cat_000' (train) not found" in bad.stderr
    assert "Traceback" not in bad.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert (tmp_path / "good" / "checkpoints" / "best.keras").is_file()


@pytest.mark.slow
def test_training_on_a_voc_root(tmp_path):
    root = write_voc_root(tmp_path / "voc", count=10)
    result = _run(
        "train.py",
        "data=voc",
        f"data.root={root}",
        "data.dataset.class_names=pascal_voc",
        *TINY_PARTS,
        "data.base_size=32",
        "data.eval_size=32",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Finished: val_miou" in result.stdout


class OddSizes(SegmentationDataset):
    def __init__(self):
        super().__init__(["bg", "fg"], [(0, 0, 0), (255, 255, 255)])
        self.shapes = [(37, 53), (64, 20), (37, 53)]

    def ids(self, split):
        return [str(i) for i in range(len(self.shapes))]

    def load_uncached(self, split, index):
        height, width = self.shapes[index]
        mask = np.zeros((height, width), np.uint8)
        mask[: height // 2] = 1
        mask[0, 0] = 255
        return np.zeros((height, width, 3), np.uint8), mask


def test_validation_scores_every_label_pixel_at_native_resolution():
    from animalseg.models.unet import UNet

    model = UNet(num_classes=2, base_filters=2, depth=2)
    for predict_size in (None, 16, 96):
        result = Evaluator(OddSizes(), settings=InferenceSettings(size=predict_size), batch_size=2).evaluate(model)
        assert result.confusion.sum() == sum(h * w - 1 for h, w in OddSizes().shapes)
