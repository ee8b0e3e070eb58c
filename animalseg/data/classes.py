"""Where a dataset's classes come from, in one order for every layout.

1. ``labelmap.txt`` in the root (CVAT's ``name:r,g,b:parts:actions``): names and mask colours;
2. ``data.dataset.class_names``: a list, or ``pascal_voc`` for the 21 Pascal VOC classes;
3. the annotation file's own classes (COCO categories, LabelMe labels), for the JSON layouts;
4. ``classes.txt`` in the root: one name per line in index order (LabelMe's ``labels.txt`` style
   is read too: a ``__ignore__`` line is skipped);
5. nothing: the run stops in one line that lists the mask values it found. Never another
   dataset's classes by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animalseg.data.images import IGNORE, mask_values, voc_colormap
from animalseg.data.labelmap import read_labelmap
from animalseg.errors import DataError

LABELMAP_FILE = "labelmap.txt"
CLASSES_FILE = "classes.txt"
PASCAL_VOC = "pascal_voc"
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
MASKS_SCANNED = 2000  # masks read to list the values found when no class names are given


@dataclass(frozen=True)
class Classes:
    """Names, one colour each, whether masks are decoded by those colours (a labelmap), and
    where they came from (named in error messages)."""

    names: list[str]
    colors: np.ndarray
    by_colour: bool
    source: str


def read_classes_file(path: Path) -> list[str]:
    """Names of a ``classes.txt`` in index order (blank, ``#`` and ``__ignore__`` lines skipped)."""
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    names = [name for name in names if name and not name.startswith("#") and name != "__ignore__"]
    if not names:
        raise DataError(f"{path}: no class names in it; write one name per line, background first")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: class {repeated[0]!r} is listed more than once; keep one line per class")
    return names


def given_names(class_names: str | Sequence[str] | None) -> list[str] | None:
    """``data.dataset.class_names`` as a list (``pascal_voc`` = the 21 VOC classes), or None."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        if class_names != PASCAL_VOC:
            raise DataError(
                f"data.dataset.class_names={class_names}: give a list ([background,cat,dog]), '{PASCAL_VOC}' or null"
            )
        return list(VOC_CLASSES)
    names = [str(name) for name in class_names]
    if len(set(names)) != len(names) or not names:
        raise DataError(f"data.dataset.class_names={names}: needs at least one name, each once")
    return names


def named(names: Sequence[str], source: str) -> Classes:
    """Classes without colours of their own: index masks, drawn in the VOC palette."""
    return Classes(list(names), voc_colormap(len(names)), False, source)


def resolve_classes(
    root: Path, class_names: str | Sequence[str] | None, masks: Iterable[Path], labelmap_dir: Path | None = None
) -> Classes:
    """Classes of a PNG-mask dataset at ``root`` (labelmap/classes file in ``labelmap_dir``,
    default ``root``); ``masks`` are read only to name the values found when nothing is given."""
    folder = labelmap_dir or root
    given = given_names(class_names)
    labelmap = folder / LABELMAP_FILE
    if labelmap.is_file():
        names, colors = read_labelmap(labelmap)
        if given is not None and given != names:
            raise DataError(
                f"data.dataset.class_names={given} differs from {labelmap} ({names}); "
                "set data.dataset.class_names=null to use the labelmap"
            )
        return Classes(names, np.asarray(colors, np.uint8), True, str(labelmap))
    if given is not None:
        return named(given, "data.dataset.class_names")
    classes_file = folder / CLASSES_FILE
    if classes_file.is_file():
        return named(read_classes_file(classes_file), str(classes_file))
    raise DataError(no_classes_message(folder, masks))


def no_classes_message(folder: Path, masks: Iterable[Path]) -> str:
    """The one line that stops a run without class names: the mask values found and the fix."""
    values: set[int] = set()
    scanned = 0
    for path in masks:
        if scanned == MASKS_SCANNED:
            break
        if path.is_file():
            try:
                values |= mask_values(path)
            except DataError:
                continue
            scanned += 1
    found = sorted(values - {IGNORE})
    where = f"no {LABELMAP_FILE} or {CLASSES_FILE} in {folder} and data.dataset.class_names is null"
    if not found:
        return (
            f"{folder}: no class names ({where}) and the masks are not class indices; for colour masks write "
            f"{folder / LABELMAP_FILE} (one 'name:r,g,b::' line per class)"
        )
    example = ",".join(["background", *(f"class{v}" for v in range(1, found[-1] + 1))][: found[-1] + 1])
    return (
        f"{folder}: no class names ({where}); the {scanned} masks hold class indices "
        f"{', '.join(map(str, found))}{' (and 255 = void)' if IGNORE in values else ''}: set "
        f"data.dataset.class_names=[{example}] or write {folder / CLASSES_FILE} with one name per line in index order"
    )
