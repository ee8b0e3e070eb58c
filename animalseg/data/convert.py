"""Write any dataset in one of the layouts the readers take (``scripts/convert_dataset.py``, and
the tests' generated datasets of every layout).

``folder``, ``voc`` and ``cvat`` keep the masks exactly (``voc``/``folder`` as palette index PNGs with
a ``classes.txt``, ``cvat`` as colour PNGs with its ``labelmap.txt`` and one ``default.txt``);
``coco`` writes one compressed-RLE annotation per class and image (exact) or, with
``polygons=True``, one polygon per connected region; ``labelme`` writes polygons. Polygons follow
region outlines (holes are not kept, and the outline is approximate). Void pixels (255) have no
CVAT, COCO or LabelMe form and become background there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from animalseg.data.classes import CLASSES_FILE, LABELMAP_FILE
from animalseg.data.dataset import SPLITS, SegmentationDataset

LAYOUTS = ("folder", "voc", "cvat", "coco", "labelme")
Writer = Callable[[SegmentationDataset, Path, bool], None]


def _samples(dataset: SegmentationDataset):
    """(split, id, image, mask) over train and val."""
    for split in SPLITS:
        for index, sample_id in enumerate(dataset.ids(split)):
            image, mask = dataset.load(split, index)
            yield split, sample_id, image, mask


def _save(array: np.ndarray, path: Path, palette: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode="P" if palette is not None else None)
    if palette is not None:
        full = np.zeros((256, 3), np.uint8)
        full[: len(palette)] = palette
        full[255] = (255, 255, 255)
        image.putpalette(full.reshape(-1).tolist())
    image.save(path)


def _classes_file(dataset: SegmentationDataset, out: Path) -> None:
    (out / CLASSES_FILE).write_text("".join(f"{name}\n" for name in dataset.class_names))


def write_folder(dataset: SegmentationDataset, out: Path, polygons: bool = False) -> None:
    _classes_file(dataset, out)
    for _, sample_id, image, mask in _samples(dataset):
        _save(image, out / "images" / f"{sample_id}.png")
        _save(mask, out / "masks" / f"{sample_id}.png", dataset.colors)


def write_voc(dataset: SegmentationDataset, out: Path, polygons: bool = False) -> None:
    _classes_file(dataset, out)
    lists: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split, sample_id, image, mask in _samples(dataset):
        _save(image, out / "JPEGImages" / f"{sample_id}.png")
        _save(mask, out / "SegmentationClass" / f"{sample_id}.png", dataset.colors)
        lists[split].append(sample_id)
    (out / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for split, ids in lists.items():
        (out / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def write_cvat(dataset: SegmentationDataset, out: Path, polygons: bool = False) -> None:
    """As CVAT's "Segmentation mask 1.1" export with images: one ``default.txt``, no train/val."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# label:color_rgb:parts:actions"]
    lines += [
        f"{name}:{','.join(map(str, color))}::"
        for name, color in zip(dataset.class_names, dataset.colors.tolist(), strict=True)
    ]
    (out / LABELMAP_FILE).write_text("\n".join(lines) + "\n")
    palette = np.zeros((256, 3), np.uint8)
    palette[: dataset.num_classes] = dataset.colors
    ids = []
    for _, sample_id, image, mask in _samples(dataset):
        _save(image, out / "JPEGImages" / f"{sample_id}.png")
        _save(palette[np.where(mask == 255, 0, mask)], out / "SegmentationClass" / f"{sample_id}.png")
        ids.append(sample_id)
    (out / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "Segmentation" / "default.txt").write_text("".join(f"{i}\n" for i in ids))


def _outlines(region: np.ndarray, shift: float) -> list[list[tuple[float, float]]]:
    """Outer outlines of a boolean region's connected parts (at least 3 points each)."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[(float(x) + shift, float(y) + shift) for x, y in c[:, 0]] for c in contours if len(c) >= 3]


def write_coco(dataset: SegmentationDataset, out: Path, polygons: bool = False) -> None:
    categories = [{"id": i, "name": n} for i, n in enumerate(dataset.class_names) if i > 0]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for _, sample_id, image, mask in _samples(dataset):
        file_name = f"{sample_id}.png"
        _save(image, out / "images" / file_name)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "height": mask.shape[0], "width": mask.shape[1]})
        for value in sorted(int(v) for v in np.unique(mask) if 0 < v < dataset.num_classes):
            region = mask == value
            rle = coco_mask.encode(np.asfortranarray(region.astype(np.uint8)))
            entry = {
                "image_id": image_id,
                "category_id": value,
                "iscrowd": 0,
                "area": float(coco_mask.area(rle)),
                "bbox": [float(v) for v in coco_mask.toBbox(rle)],
            }
            if polygons:
                # pixel centres → COCO's continuous coordinates (a pixel spans x..x+1)
                outlines = _outlines(region, 0.5)
                entry["segmentation"] = [[v for point in outline for v in point] for outline in outlines]
            else:
                entry["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
            annotations.append({"id": len(annotations) + 1, **entry})
    document = {"images": images, "annotations": annotations, "categories": categories}
    (out / "annotations.json").write_text(json.dumps(document))


def write_labelme(dataset: SegmentationDataset, out: Path, polygons: bool = True) -> None:
    _classes_file(dataset, out)
    for _, sample_id, image, mask in _samples(dataset):
        image_path = out / f"{sample_id}.png"
        _save(image, image_path)
        shapes = []
        for value in sorted(int(v) for v in np.unique(mask) if 0 < v < dataset.num_classes):
            for outline in _outlines(mask == value, 0.0):
                shapes.append({"label": dataset.class_names[value], "points": outline, "shape_type": "polygon"})
        shapes.sort(key=lambda s: -cv2.contourArea(np.array(s["points"], np.float32)))  # small ones on top
        document = {
            "version": "5.4.1",
            "flags": {},
            "shapes": [{**s, "group_id": None, "flags": {}} for s in shapes],
            "imagePath": image_path.name,
            "imageData": None,
            "imageHeight": int(mask.shape[0]),
            "imageWidth": int(mask.shape[1]),
        }
        image_path.with_suffix(".json").write_text(json.dumps(document))


WRITERS: dict[str, Writer] = {
    "folder": write_folder,
    "voc": write_voc,
    "cvat": write_cvat,
    "coco": write_coco,
    "labelme": write_labelme,
}


def write_layout(dataset: SegmentationDataset, layout: str, out: str | Path, polygons: bool = False) -> Path:
    """Write ``dataset``'s train and val samples to the empty or new folder ``out`` in ``layout``."""
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; name a new folder")
    target.mkdir(parents=True, exist_ok=True)
    try:
        WRITERS[layout](dataset, target, polygons)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
