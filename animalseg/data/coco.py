"""COCO instance annotations (one JSON: ``images``, ``categories``, ``annotations``) rasterised to
semantic masks.

Polygons, uncompressed RLE (``counts`` a list) and compressed RLE (``counts`` a string) are decoded
with ``pycocotools`` (the COCO API's own ``frPyObjects``/``decode``). Classes: ``background``
(index 0), then the categories in the order the JSON lists them (a first category named
``background`` or ``_background_`` is index 0 itself); ``data.dataset.class_names`` may rename
them (same count). Overlaps: annotations are painted from the largest area to the smallest, so a
smaller object lying on a larger one stays visible (ties: file order, later on top); crowd
annotations are painted like the others. Pixels no annotation covers are background.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from animalseg.data.classes import given_names, named
from animalseg.data.layout import FileDataset, Sample, require_root
from animalseg.errors import DataError

BACKGROUND_NAMES = ("background", "_background_")
OUTSIDE_TOLERANCE = 1.0  # pixels a polygon point may lie beyond the image border (annotation tools round)


def read_json(path: Path) -> Any:
    """A JSON file, or one line naming the file and what is wrong with it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def outside_point(polygon: list[float], width: int, height: int) -> tuple[float, float] | None:
    """The first point of a flat [x0, y0, x1, y1, ...] polygon beyond the image, if any."""
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    bad = (
        (points[:, 0] < -OUTSIDE_TOLERANCE)
        | (points[:, 1] < -OUTSIDE_TOLERANCE)
        | (points[:, 0] > width + OUTSIDE_TOLERANCE)
        | (points[:, 1] > height + OUTSIDE_TOLERANCE)
    )
    return (float(points[bad][0, 0]), float(points[bad][0, 1])) if bad.any() else None


class CocoDataset(FileDataset):
    """``<root>/<annotations>`` describing the images in ``<root>/<image_dir>``; a second file
    ``val_annotations`` (same categories) gives the val split, else a split is made."""

    split_lists_from = "the annotation files"

    def __init__(
        self,
        root: str | Path,
        annotations: str = "annotations.json",
        val_annotations: str | None = None,
        image_dir: str = "images",
        class_names: list[str] | None = None,
        unknown_color: str = "error",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        root = require_root(root)
        self.image_dir = root / image_dir
        files = {"train": root / annotations, **({"val": root / val_annotations} if val_annotations else {})}
        parsed = {split: read_json(path) for split, path in files.items()}
        self.category_index, names = self._categories(files, parsed)
        given = given_names(class_names)
        if given is not None and len(given) != len(names):
            raise DataError(
                f"data.dataset.class_names has {len(given)} names but {files['train']} gives {len(names)} classes "
                f"({', '.join(names)}); list {len(names)} names or set it to null"
            )
        samples = {split: self._samples(files[split], data) for split, data in parsed.items()}
        classes = named(given or names, "data.dataset.class_names" if given else str(files["train"]))
        lists = samples if val_annotations else None
        pool = None if val_annotations else samples["train"]
        super().__init__(
            root, classes, lists, pool, unknown_color, cache, cache_budget_gb, val_fraction, split_seed, split_dir
        )

    @staticmethod
    def _categories(files: dict[str, Path], parsed: dict[str, Any]) -> tuple[dict[int, int], list[str]]:
        """Category id → class index, and the class names (background first)."""
        found: dict[str, list[tuple[int, str]]] = {}
        for split, data in parsed.items():
            if not isinstance(data, dict) or not isinstance(data.get("categories"), list) or not data["categories"]:
                raise DataError(f"{files[split]}: no 'categories' list; is it a COCO instances file?")
            try:
                found[split] = [(int(c["id"]), str(c["name"])) for c in data["categories"]]
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{files[split]}: every category needs an integer 'id' and a 'name'") from None
        if "val" in found and found["val"] != found["train"]:
            raise DataError(f"{files['val']}: its categories differ from {files['train']}'s; export both alike")
        categories = found["train"]
        offset = 0 if categories[0][1] in BACKGROUND_NAMES else 1
        names = ([] if offset == 0 else ["background"]) + [name for _, name in categories]
        return {cid: position + offset for position, (cid, _) in enumerate(categories)}, names

    def _samples(self, path: Path, data: dict[str, Any]) -> list[Sample]:
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for annotation in data.get("annotations", []):
            by_image[annotation.get("image_id")].append(annotation)
        samples = []
        for info in data.get("images", []):
            try:
                file_name, image_id = str(info["file_name"]), info["id"]
                size = (int(info["height"]), int(info["width"]))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}: image entry {info} needs 'id', 'file_name', 'width' and 'height'") from None
            sample_id = Path(file_name).with_suffix("").as_posix()
            shapes = {"file": path, "size": size, "annotations": by_image.get(image_id, [])}
            samples.append(Sample(sample_id, self.image_dir / file_name, None, shapes))
        if not samples:
            raise DataError(f"{path}: no 'images' in it")
        return samples

    def image_size(self, sample: Sample) -> tuple[int, int]:
        height, width = sample.shapes["size"]
        return width, height

    def sample_classes(self, sample: Sample) -> frozenset[int]:
        return frozenset(
            self.category_index[a.get("category_id")]
            for a in sample.shapes["annotations"]
            if a.get("category_id") in self.category_index
        )

    def read_labels(self, sample: Sample, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
        path, (height, width) = sample.shapes["file"], sample.shapes["size"]
        if size is not None and size != (height, width):
            raise DataError(
                f"{sample.image}: image is {size[1]}x{size[0]} but {path} gives {width}x{height} for it; "
                "fix 'width'/'height' of that image entry"
            )
        mask = np.zeros((height, width), np.uint8)
        problems: list[str] = []
        painted = []
        for order, annotation in enumerate(sample.shapes["annotations"]):
            where = f"{path}: annotation {annotation.get('id')} of {sample.image.name}"
            category = annotation.get("category_id")
            if category not in self.category_index:
                problems.append(
                    f"{where}: category_id {category} is not among the categories; add it to 'categories' or "
                    "set data.dataset.unknown_color=ignore (its pixels → ignore index)"
                )
                value = self.ignore_index
            else:
                value = self.category_index[category]
            region = self._decode(annotation, height, width, where)
            painted.append((-int(region.sum()), order, region, value))
        for _, _, region, value in sorted(painted, key=lambda item: (item[0], item[1])):
            mask[region] = value
        return mask, problems

    @staticmethod
    def _decode(annotation: dict[str, Any], height: int, width: int, where: str) -> np.ndarray:
        """One annotation's pixels as a boolean (H, W) array."""
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
            if len(polygons) != len(segmentation):
                raise DataError(f"{where}: a polygon with fewer than 3 points; delete it or redraw it")
            for polygon in polygons:
                point = outside_point(polygon, width, height)
                if point is not None:
                    raise DataError(
                        f"{where}: polygon point {point} is outside the {width}x{height} image; "
                        "move it inside (or clip the polygon to the image)"
                    )
            if not polygons:
                return np.zeros((height, width), bool)
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            if list(segmentation["size"]) != [height, width]:
                raise DataError(
                    f"{where}: RLE size {segmentation['size']} is not the image's [{height}, {width}]; re-export it"
                )
            counts = segmentation["counts"]
            rle = coco_mask.frPyObjects(segmentation, height, width) if isinstance(counts, list) else segmentation
            if isinstance(rle.get("counts"), str):
                rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        else:
            raise DataError(f"{where}: 'segmentation' is neither polygons nor RLE; re-export with masks")
        return coco_mask.decode(rle).astype(bool)
