"""LabelMe annotations: one ``<name>.json`` per image (``imagePath``, ``imageHeight``,
``imageWidth``, ``shapes``), anywhere under the root, rasterised to semantic masks.

Shapes: ``polygon``, ``rectangle`` and ``circle`` are areas, filled with Pillow's polygon fill as
LabelMe's own ``shape_to_mask`` does; other types (lines, points) mark no area and are an error.
Overlaps: shapes are painted in file order, a later shape on top (as LabelMe's ``labelme2voc``).
Classes: ``data.dataset.class_names``, else ``classes.txt`` in the root (LabelMe's ``labels.txt``
style is read too), else ``background`` then every label found, sorted; a label ``background``
or ``_background_`` is class 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from animalseg.data.classes import CLASSES_FILE, given_names, named, read_classes_file
from animalseg.data.coco import OUTSIDE_TOLERANCE, read_json
from animalseg.data.layout import FileDataset, Sample, require_root
from animalseg.errors import DataError

BACKGROUND_LABELS = ("background", "_background_")
AREA_SHAPES = ("polygon", "rectangle", "circle")


def shape_polygon(shape: dict[str, Any], where: str) -> list[tuple[float, float]]:
    """The outline of a polygon, rectangle or circle shape as points."""
    kind = shape.get("shape_type") or "polygon"
    try:
        points = [(float(x), float(y)) for x, y in shape.get("points", [])]
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'points' must be [x, y] pairs") from None
    if kind not in AREA_SHAPES:
        raise DataError(
            f"{where}: shape_type '{kind}' marks no area; redraw it as a polygon, rectangle or circle, or delete it"
        )
    if kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        radius = math.hypot(px - cx, py - cy)
        steps = max(16, int(radius))
        return [
            (cx + radius * math.cos(2 * math.pi * i / steps), cy + radius * math.sin(2 * math.pi * i / steps))
            for i in range(steps)
        ]
    if kind == "polygon" and len(points) >= 3:
        return points
    raise DataError(f"{where}: a {kind} with {len(points)} points; redraw it or delete it")


class LabelMeDataset(FileDataset):
    """Every LabelMe JSON under ``root`` with the image it names (see the module docstring)."""

    split_lists_from = "the JSON files"

    def __init__(
        self,
        root: str | Path,
        class_names: list[str] | None = None,
        unknown_color: str = "error",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        root = require_root(root)
        files = sorted(root.rglob("*.json"))
        if not files:
            raise DataError(f"data.root: {root} has no LabelMe .json files (one per image, saved by LabelMe)")
        pool = [self._sample(root, path) for path in files]
        given = given_names(class_names)
        if given is not None:
            classes = named(given, "data.dataset.class_names")
        elif (root / CLASSES_FILE).is_file():
            classes = named(read_classes_file(root / CLASSES_FILE), str(root / CLASSES_FILE))
        else:
            labels = {str(s.get("label")) for sample in pool for s in sample.shapes["shapes"]}
            found = sorted(labels - set(BACKGROUND_LABELS))
            classes = named(["background", *found], f"the labels of the JSON files in {root}")
        self.label_index = {name: index for index, name in enumerate(classes.names)}
        for alias in BACKGROUND_LABELS:
            self.label_index.setdefault(alias, 0)
        super().__init__(
            root, classes, None, pool, unknown_color, cache, cache_budget_gb, val_fraction, split_seed, split_dir
        )

    @staticmethod
    def _sample(root: Path, path: Path) -> Sample:
        data = read_json(path)
        try:
            image_path, shapes = str(data["imagePath"]), list(data["shapes"])
            size = (int(data["imageHeight"]), int(data["imageWidth"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{path}: not a LabelMe file (needs imagePath, imageHeight, imageWidth and shapes)"
            ) from None
        sample_id = path.relative_to(root).with_suffix("").as_posix()
        # only what rasterising needs: LabelMe may embed the whole image (imageData) in the file
        return Sample(
            sample_id, (path.parent / image_path).resolve(), None, {"file": path, "size": size, "shapes": shapes}
        )

    def image_size(self, sample: Sample) -> tuple[int, int]:
        height, width = sample.shapes["size"]
        return width, height

    def sample_classes(self, sample: Sample) -> frozenset[int]:
        labels = (str(shape.get("label")) for shape in sample.shapes["shapes"])
        return frozenset(self.label_index[label] for label in labels if label in self.label_index)

    def read_labels(self, sample: Sample, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
        path, (height, width) = sample.shapes["file"], sample.shapes["size"]
        if size is not None and size != (height, width):
            raise DataError(
                f"{sample.image}: image is {size[1]}x{size[0]} but {path} says {width}x{height}; "
                "open and save it again in LabelMe, or fix imageWidth/imageHeight"
            )
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        problems = []
        for number, shape in enumerate(sample.shapes["shapes"]):
            label = str(shape.get("label"))
            where = f"{path}: shape {number} ('{label}')"
            points = shape_polygon(shape, where)
            outside = [
                (x, y)
                for x, y in points
                if not (-OUTSIDE_TOLERANCE <= x <= width + OUTSIDE_TOLERANCE)
                or not (-OUTSIDE_TOLERANCE <= y <= height + OUTSIDE_TOLERANCE)
            ]
            if outside and shape.get("shape_type", "polygon") != "circle":
                raise DataError(
                    f"{where}: point {outside[0]} is outside the {width}x{height} image; move it inside in LabelMe"
                )
            value = self.label_index.get(label)
            if value is None:
                problems.append(
                    f"{where}: label '{label}' is not one of the classes ({self.classes.source}); add it there or "
                    "set data.dataset.unknown_color=ignore (its pixels → ignore index)"
                )
                value = self.ignore_index
            draw.polygon(points, outline=value, fill=value)
        return np.asarray(canvas), problems
