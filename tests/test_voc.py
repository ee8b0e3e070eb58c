import numpy as np
import pytest
from PIL import Image

from animalseg.data.labelmap import read_labelmap
from animalseg.data.voc import VOC_CLASSES, VOCDataset, voc_colormap
from animalseg.errors import DataError
from tests.fixtures import write_animals_like, write_voc_root


def test_multi_root_colour_masks_merge_with_labelmap_classes(tmp_path):
    data = VOCDataset(write_animals_like(tmp_path / "animals"))
    assert data.class_names == ["background", "cat", "dog"]
    assert len(data.ids("train")) == 5 and len(data.ids("val")) == 3
    assert data.ids("train")[0] == "cat/cat_000"
    for split in ("train", "val"):
        for index, sample_id in enumerate(data.ids(split)):
            image, mask = data.load(split, index)
            assert image.dtype == np.uint8 and image.shape == (*mask.shape, 3)
            label = 1 if sample_id.startswith("cat") else 2
            assert set(np.unique(mask)) == {0, label}
    assert data.load("train", 2)[1].shape == (30, 50)


def test_unknown_colour_is_an_error_naming_file_colour_and_count(tmp_path):
    root = write_animals_like(tmp_path / "animals")
    mask_path = root / "cat" / "SegmentationClass" / "cat_000.png"
    rgb = np.array(Image.open(mask_path))
    rgb[:2, :3] = (1, 2, 3)
    Image.fromarray(rgb).save(mask_path)
    with pytest.raises(DataError) as error:
        VOCDataset(root).load("train", 0)
    assert "cat_000.png" in str(error.value) and "(1, 2, 3)" in str(error.value)
    assert "6 pixels" in str(error.value) and "unknown_color=ignore" in str(error.value)
    mask = VOCDataset(root, unknown_color="ignore").load("train", 0)[1]
    assert (mask[:2, :3] == 255).all()


def test_single_voc_root_with_palette_masks_and_void(tmp_path):
    data = VOCDataset(write_voc_root(tmp_path / "VOC2012"))
    assert data.class_names == list(VOC_CLASSES) and data.num_classes == 21
    assert len(data.ids("train")) == 4 and len(data.ids("val")) == 2
    image, mask = data.load("train", 1)
    assert image.shape == (40, 43, 3)
    assert 255 in np.unique(mask) and 2 in np.unique(mask)
    assert np.array_equal(data.colors[:3], voc_colormap(3))


def test_voc_class_names_from_config(tmp_path):
    root = write_voc_root(tmp_path / "voc", count=4, num_classes=3)
    data = VOCDataset(root, class_names=["background", "a", "b"])
    assert data.num_classes == 3
    with pytest.raises(DataError, match="unknown mask index"):
        VOCDataset(write_voc_root(tmp_path / "voc21"), class_names=["background", "a"]).load("train", 3)


def test_missing_root_and_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        VOCDataset(tmp_path / "nowhere")
    root = write_voc_root(tmp_path / "voc")
    (root / "JPEGImages" / "2007_000000.jpg").unlink()
    with pytest.raises(DataError, match="2007_000000.jpg: file not found"):
        VOCDataset(root).load("train", 0)


def test_labelmap_errors_name_the_line(tmp_path):
    path = tmp_path / "labelmap.txt"
    path.write_text("background:0,0,0::\ncat:1,2::\n")
    with pytest.raises(DataError, match="labelmap.txt:2"):
        read_labelmap(path)
