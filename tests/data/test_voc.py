import numpy as np
import pytest
from PIL import Image

from animalseg.data.classes import VOC_CLASSES
from animalseg.data.images import voc_colormap
from animalseg.data.labelmap import read_labelmap
from animalseg.data.voc import VOCDataset
from animalseg.errors import DataError
from tests.fixtures import COLORS, write_animals_like, write_voc_root


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
    data = VOCDataset(write_voc_root(tmp_path / "VOC2012"), class_names="pascal_voc")
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
    with pytest.raises(DataError, match=r"class index \d+ on \d+ pixels is past the class list"):
        VOCDataset(write_voc_root(tmp_path / "voc21"), class_names=["background", "a"]).load("train", 3)


def test_missing_root_and_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        VOCDataset(tmp_path / "nowhere")
    root = write_voc_root(tmp_path / "voc")
    (root / "JPEGImages" / "2007_000000.jpg").unlink()
    with pytest.raises(DataError, match=r"2007_000000\.\{jpg,jpeg,png\}: image of '2007_000000' \(train\) not found"):
        VOCDataset(root, class_names="pascal_voc").load("train", 0)


def test_labelmap_errors_name_the_line(tmp_path):
    path = tmp_path / "labelmap.txt"
    path.write_text("background:0,0,0::\ncat:1,2::\n")
    with pytest.raises(DataError, match="labelmap.txt:2"):
        read_labelmap(path)


def _palette_mask(path, indices, palette):
    """Save ``indices`` as a P-mode PNG whose palette index i is the colour ``palette[i]``."""
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette([value for color in palette for value in color])
    image.save(path)


def test_palette_masks_are_decoded_by_colour_when_there_is_a_labelmap(tmp_path):
    root = write_animals_like(tmp_path / "animals")  # labelmap: background, cat, dog
    classes = VOCDataset(root).load("train", 0)[1]  # background 0 and cat 1
    path = root / "cat" / "SegmentationClass" / "cat_000.png"
    # palette index 1 holds the dog's colour: those pixels are dog (2), not class 1 (cat)
    _palette_mask(path, classes, [COLORS[0], COLORS[2]])
    np.testing.assert_array_equal(VOCDataset(root).load("train", 0)[1], np.where(classes == 1, 2, 0))
    # indices swapped (0 = the cat colour, 1 = black): the colour decides, not the index
    _palette_mask(path, 1 - classes, [COLORS[1], COLORS[0]])
    np.testing.assert_array_equal(VOCDataset(root).load("train", 0)[1], classes)


def test_greyscale_masks_with_a_labelmap(tmp_path):
    root = write_animals_like(tmp_path / "animals")
    path = root / "cat" / "SegmentationClass" / "cat_000.png"
    Image.fromarray(np.array(VOCDataset(root).load("train", 0)[1])).save(path)  # L mode, values 0/1
    with pytest.raises(DataError) as error:
        VOCDataset(root).load("train", 0)
    assert "cat_000.png" in str(error.value) and "greyscale" in str(error.value)
    grey = root / "labelmap.txt"
    grey.write_text("background:0,0,0::\ncat:1,1,1::\ndog:128,128,128::\n")  # grey colours: grey levels
    mask = np.zeros((40, 36), np.uint8)
    mask[:10] = 128
    mask[10:20] = 1
    mask[0, 0] = 7
    Image.fromarray(mask).save(path)
    with pytest.raises(DataError, match=r"unknown mask colour \(7, 7, 7\) on 1 pixels"):
        VOCDataset(root).load("train", 0)
    decoded = VOCDataset(root, unknown_color="ignore").load("train", 0)[1]
    assert decoded[0, 0] == 255 and (decoded[1:10] == 2).all() and (decoded[10:20] == 1).all()
    assert (decoded[20:] == 0).all()


def test_without_a_labelmap_palette_values_stay_indices(tmp_path):
    root = write_voc_root(tmp_path / "voc", count=4, num_classes=3)
    mask = VOCDataset(root, class_names=["background", "a", "b"]).load("train", 1)[1]
    raw = np.array(Image.open(root / "SegmentationClass" / "2007_000001.png"))
    np.testing.assert_array_equal(mask, raw)


def test_index_masks_without_class_names_stop_listing_the_indices_found(tmp_path):
    root = write_voc_root(tmp_path / "voc", count=4, num_classes=3)
    with pytest.raises(DataError) as error:
        VOCDataset(root)
    message = str(error.value)
    assert len(error.value.problems) == 1 and "class indices 0, 1, 2 (and 255 = void)" in message
    assert "data.dataset.class_names=[background,class1,class2]" in message and "classes.txt" in message
    (root / "classes.txt").write_text("background\nfox\nwolf\n")
    assert VOCDataset(root).class_names == ["background", "fox", "wolf"]


def test_cvat_default_list_gets_a_seeded_stratified_split(tmp_path):
    root = write_voc_root(tmp_path / "voc", count=10, num_classes=3)
    lists = root / "ImageSets" / "Segmentation"
    ids = [*(lists / "train.txt").read_text().split(), *(lists / "val.txt").read_text().split()]
    (lists / "train.txt").unlink()
    (lists / "val.txt").unlink()
    (lists / "default.txt").write_text("\n".join(ids) + "\n")
    data = VOCDataset(root, class_names=["background", "a", "b"])
    assert data.made_split and sorted(data.ids("train") + data.ids("val")) == sorted(ids)
    assert len(data.ids("val")) == 2
    classes = {sample_id: set(np.unique(data.load("val", i)[1])) - {255} for i, sample_id in enumerate(data.ids("val"))}
    assert {frozenset(c) for c in classes.values()} == {frozenset({0, 1}), frozenset({0, 2})}  # one of each
    again = VOCDataset(root, class_names=["background", "a", "b"])
    assert again.ids("val") == data.ids("val")
    other = VOCDataset(root, class_names=["background", "a", "b"], split_seed=1)
    assert sorted(other.ids("train") + other.ids("val")) == sorted(ids)
