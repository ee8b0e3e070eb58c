"""Every on-disk layout (folder, VOC, CVAT, COCO, LabelMe), generated from the synthetic shapes:
read back through its ``data=`` config, checked clean, split, k-folded and trained for one epoch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from animalseg.config import validate_config
from animalseg.data.check import check_dataset, quick_check
from animalseg.data.coco import CocoDataset
from animalseg.data.convert import write_layout
from animalseg.data.folder import FolderDataset
from animalseg.data.folds import FoldSplit
from animalseg.data.labelme import LabelMeDataset
from animalseg.data.module import DataModule
from animalseg.data.synthetic import CLASS_NAMES, SyntheticDataset
from animalseg.errors import ConfigError, DataError
from animalseg.run import run
from tests.helpers import ROOT, TINY_PARTS, compose_config, quiet_env

# layout name -> (data= option, extra overrides, written with polygons, exact masks)
LAYOUTS = {
    "folder": ("folder", [], False, True),
    "voc": ("voc", [], False, True),
    "cvat": ("cvat", [], False, True),
    "coco": ("coco", [], False, True),
    "coco_polygons": ("coco", [], True, False),
    "labelme": ("labelme", [], True, False),
}


@pytest.fixture(scope="module")
def source():
    return SyntheticDataset(image_size=40, train_size=16, val_size=4, seed=3, cache=True)


@pytest.fixture(scope="module")
def roots(source, tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {
        name: write_layout(source, option if name != "coco_polygons" else "coco", base / name, polygons)
        for name, (option, _, polygons, _) in LAYOUTS.items()
    }


def data_module(option: str, root, *overrides: str) -> DataModule:
    return DataModule.from_config(compose_config([f"data={option}", f"data.root={root}", *overrides]).data)


def masks_by_id(dataset) -> dict[str, np.ndarray]:
    return {
        sample_id: dataset.load(split, index)[1]
        for split in ("train", "val")
        for index, sample_id in enumerate(dataset.ids(split))
    }


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_reads_back_the_same_classes_and_masks(name, source, roots):
    option, overrides, _, exact = LAYOUTS[name]
    dataset = data_module(option, roots[name], *overrides).dataset
    assert dataset.class_names == list(CLASS_NAMES)
    expected, found = masks_by_id(source), masks_by_id(dataset)
    assert sorted(found) == sorted(expected)
    for sample_id, mask in expected.items():
        agreement = (found[sample_id] == mask).mean()
        assert agreement == 1.0 if exact else agreement > 0.85, (sample_id, agreement)
    report = check_dataset(dataset)
    assert report.problems == [] and report.warnings == []
    if name == "voc":  # the lists are kept
        assert dataset.ids("val") == source.ids("val") and not dataset.made_split
    else:  # no lists (CVAT: only default.txt): a split was made, 20 % to val
        assert dataset.made_split and len(dataset.ids("val")) == 4


@pytest.mark.parametrize("name", LAYOUTS)
def test_kfold_works_on_every_layout(name, roots):
    option, overrides, _, _ = LAYOUTS[name]
    source = data_module(option, roots[name], *overrides).dataset
    folds = [FoldSplit(source, 4, fold) for fold in range(4)]
    val = sorted(i for fold in folds for i in fold.ids("val"))
    assert val == sorted(source.ids("train") + source.ids("val"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["folder", "voc", "cvat", "coco", "labelme"])
def test_one_tiny_epoch_on_every_layout_writes_the_made_split(name, roots, tmp_path):
    option, overrides, _, _ = LAYOUTS[name]
    tiny = [o for o in TINY_PARTS if not o.startswith("data.")]
    common = [f"data={option}", f"data.root={roots[name]}", *overrides, *tiny, "data.crop_size=32", "data.batch_size=4"]
    cfg = compose_config(
        [*common, "data.base_size=null", "data.eval_size=null", f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}"]
    )
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert 0.0 <= metrics["val_miou"] <= 1.0
    splits = tmp_path / "run" / "splits"
    if name == "voc":
        assert not splits.exists()
        return
    made = data_module(option, roots[name], *overrides).dataset
    assert (splits / "val.txt").read_text().split() == made.ids("val")
    reused = data_module(option, roots[name], *overrides, f"data.dataset.split_dir={splits}", "data.split_seed=7")
    assert reused.dataset.ids("val") == made.ids("val") and not reused.dataset.made_split


def test_the_made_split_is_seeded_and_keeps_duplicates_together(source, tmp_path):
    root = write_layout(source, "folder", tmp_path / "folder")
    for copy in range(3):  # three more files with the bytes of train_00000
        for folder in ("images", "masks"):
            (root / folder / f"copy{copy}.png").write_bytes((root / folder / "train_00000.png").read_bytes())
    splits = {seed: FolderDataset(root, split_seed=seed) for seed in (0, 0, 1, 2, 3)}
    assert splits[0].ids("val") == FolderDataset(root, split_seed=0).ids("val")
    assert len({tuple(d.ids("val")) for d in splits.values()}) > 1
    group = {"train_00000", "copy0", "copy1", "copy2"}
    for dataset in splits.values():
        assert group <= set(dataset.ids("train")) or group <= set(dataset.ids("val"))


def test_folder_problems_are_one_line_each_naming_the_file(source, tmp_path):
    root = write_layout(source, "folder", tmp_path / "folder")
    (root / "masks" / "train_00001.png").unlink()  # image without mask
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "train_00002.png")  # mask of another size
    Image.fromarray(np.full((40, 40), 9, np.uint8)).save(root / "masks" / "train_00003.png")  # class id past the list
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / "orphan.png")  # mask without image
    dataset = FolderDataset(root)
    problems = quick_check(dataset)
    assert any("train_00001.png: mask of 'train_00001'" in p and "add it or remove the image" in p for p in problems)
    assert any("orphan.png: mask without an image" in p for p in problems)
    report = check_dataset(dataset)
    assert any("train_00002.png" in p and "but its mask" in p and "is 8x8" in p for p in report.problems)
    assert any("train_00003.png: class index 9 on 1600 pixels is past the class list" in p for p in report.problems)
    assert all("\n" not in p for p in report.problems)
    with pytest.raises(DataError, match="data.dataset.image_dir: .*photos does not exist"):
        FolderDataset(root, image_dir="photos")


def test_a_class_without_pixels_is_a_warning(source, tmp_path):
    root = write_layout(source, "folder", tmp_path / "folder")
    (root / "classes.txt").write_text("\n".join([*CLASS_NAMES, "zebra"]) + "\n")
    report = check_dataset(FolderDataset(root))
    assert report.problems == []
    assert report.warnings == [
        "class 7 'zebra' has no pixels in train or val: check the class list (data.dataset.class_names, "
        "classes.txt or labelmap.txt) against the masks"
    ]


def _coco(tmp_path, annotations, width=20, height=10):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    for index in (1, 2):
        Image.fromarray(np.full((height, width, 3), index, np.uint8)).save(root / "images" / f"im{index}.png")
    document = {
        "images": [{"id": i, "file_name": f"im{i}.png", "width": width, "height": height} for i in (1, 2)],
        "categories": [{"id": 7, "name": "big"}, {"id": 3, "name": "small"}],
        "annotations": annotations,
    }
    (root / "annotations.json").write_text(json.dumps(document))
    return root


def test_coco_classes_follow_the_categories_and_smaller_objects_stay_on_top(tmp_path):
    small = {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]}
    big = {"id": 2, "image_id": 1, "category_id": 7, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
    # uncompressed RLE in image 2, column-major runs: columns 0-2 off, 3-4 on, the rest off
    rle = {
        "id": 3,
        "image_id": 2,
        "category_id": 3,
        "iscrowd": 1,
        "segmentation": {"size": [10, 20], "counts": [30, 20, 150]},
    }
    dataset = CocoDataset(_coco(tmp_path, [small, big, rle]), val_fraction=0.5)
    assert dataset.class_names == ["background", "big", "small"]
    masks = masks_by_id(dataset)
    first = masks["im1"]
    assert (first[3:6, 3:6] == 2).all() and first[8, 8] == 1 and (first[:, 12:] == 0).all()
    second = masks["im2"]
    assert (second[:, 3:5] == 2).all() and (second[:, :3] == 0).all() and (second[:, 5:] == 0).all()


def test_coco_polygon_outside_and_unknown_category_are_one_line_each(tmp_path):
    outside = {"id": 5, "image_id": 1, "category_id": 3, "segmentation": [[2, 2, 30, 2, 6, 6]]}
    unknown = {"id": 6, "image_id": 2, "category_id": 99, "segmentation": [[2, 2, 6, 2, 6, 6]]}
    dataset = CocoDataset(_coco(tmp_path, [outside, unknown]), val_fraction=0.5)
    problems = check_dataset(dataset).problems
    assert any(
        "annotations.json: annotation 5 of im1.png: polygon point (30.0, 2.0) is outside the 20x10 image" in p
        for p in problems
    )
    assert any("annotation 6 of im2.png: category_id 99 is not among the categories" in p for p in problems)


def test_labelme_shapes_overlap_in_file_order_and_bad_points_are_named(tmp_path):
    root = tmp_path / "labelme"
    root.mkdir()
    for index, shapes in enumerate(
        [
            [
                {"label": "dog", "points": [[0, 0], [9, 9]], "shape_type": "rectangle"},
                {"label": "cat", "points": [[2, 2], [6, 2], [6, 6], [2, 6]], "shape_type": "polygon"},
            ],
            [{"label": "cat", "points": [[0, 0], [50, 0], [5, 5]], "shape_type": "polygon"}],
        ]
    ):
        Image.fromarray(np.full((10, 12, 3), 50 * index, np.uint8)).save(root / f"im{index}.jpg")
        document = {"imagePath": f"im{index}.jpg", "imageHeight": 10, "imageWidth": 12, "shapes": shapes}
        (root / f"im{index}.json").write_text(json.dumps(document))
    dataset = LabelMeDataset(root, val_fraction=0.5)
    assert dataset.class_names == ["background", "cat", "dog"]
    index = {i: (s, n) for s in ("train", "val") for n, i in enumerate(dataset.ids(s))}
    mask = dataset.load(*index["im0"])[1]
    assert (mask[3:6, 3:6] == 1).all() and mask[8, 8] == 2 and mask[0, 11] == 0
    with pytest.raises(DataError, match=r"im1.json: shape 0 \('cat'\): point \(50.0, 0.0\) is outside the 12x10"):
        dataset.load(*index["im1"])


@pytest.mark.slow
def test_cli_data_errors_are_one_line_without_hydra_wrapping(source, tmp_path):
    root = write_layout(source, "folder", tmp_path / "folder")
    for script in ("train.py", "scripts/check_dataset.py"):
        result = subprocess.run(
            [sys.executable, str(ROOT / script), "data=voc", f"data.root={root}", f"hydra.run.dir={tmp_path / 'r'}"],
            env=quiet_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(errors) == 1 and "use data=folder" in errors[0], result.stderr[-2000:]
        assert "Error executing job" not in result.stderr and "Error in call to target" not in result.stderr


def test_cache_auto_keeps_splits_in_memory_only_within_the_budget(source, tmp_path):
    root = write_layout(source, "folder", tmp_path / "folder")
    train_bytes = 16 * 40 * 40 * 4  # 16 train images of 40x40: RGB + mask
    dataset = FolderDataset(root, cache="auto", cache_budget_gb=train_bytes / 2**30)  # train fits, val does not
    assert dataset.decoded_bytes("train") == train_bytes
    for split in ("train", "val"):
        for index in range(len(dataset.ids(split))):
            dataset.load(split, index)
    assert {split for split, _ in dataset._cache} == {"train"}
    everything = FolderDataset(root, cache="auto")  # the default budget (8 GiB)
    everything.load("val", 0)
    assert everything.caches("train") and everything.caches("val")
    with pytest.raises(DataError, match="data.dataset.cache=disk: use true"):
        FolderDataset(root, cache="disk")


@pytest.mark.parametrize("option", ["folder", "cvat", "coco", "labelme"])
def test_a_layout_without_data_root_says_so_in_one_line(option):
    cfg = compose_config([f"data={option}"])
    with pytest.raises(ConfigError) as error:
        DataModule.from_config(cfg.data)
    assert error.value.problems == ["data.root: this data option reads your files; set data.root=/path/to/dataset"]
    with pytest.raises(ConfigError, match="set data.root=/path/to/dataset"):
        validate_config(cfg)


def test_mlflow_datasets_are_named_after_the_data(roots, tmp_path):
    from animalseg.tracking.lineage import split_datasets

    pets = shutil.copytree(roots["folder"], tmp_path / "pets")
    datasets = split_datasets(data_module("folder", pets).dataset)
    assert [d.name for d in datasets.values()] == ["pets-train", "pets-val"]
    generated = split_datasets(SyntheticDataset(image_size=16, train_size=2, val_size=2))
    assert generated["training"].name == "synthetic-train"
