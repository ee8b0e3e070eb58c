"""A plain folder: ``<root>/images/<name>.{jpg,png,...}`` and ``<root>/masks/<name>.png``.

Images and masks pair by their path without suffix (sub-folders allowed). Classes: ``classes.py``
(``labelmap.txt`` for colour masks, ``classes.txt`` or ``data.dataset.class_names`` for index
masks). No split lists: a train/val split is made, or read from ``split_dir``.
"""

from __future__ import annotations

from pathlib import Path

from animalseg.data.classes import resolve_classes
from animalseg.data.images import IMAGE_EXTENSIONS
from animalseg.data.layout import FileDataset, Sample, index_by_stem, require_root
from animalseg.errors import DataError


class FolderDataset(FileDataset):
    """Images and masks with matching names in ``image_dir`` and ``mask_dir`` under ``root``."""

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images",
        mask_dir: str = "masks",
        class_names: str | list[str] | None = None,
        unknown_color: str = "error",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        root = require_root(root)
        for key, name in (("image_dir", image_dir), ("mask_dir", mask_dir)):
            if not (root / name).is_dir():
                present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
                raise DataError(
                    f"data.dataset.{key}: {root / name} does not exist (sub-folders of {root}: {present}); "
                    f"set data.dataset.{key}=<folder name>"
                )
        images = index_by_stem(root / image_dir, IMAGE_EXTENSIONS)
        masks = index_by_stem(root / mask_dir, (".png",))
        if not images:
            raise DataError(f"{root / image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it")
        pool = [Sample(stem, image, masks.get(stem, root / mask_dir / f"{stem}.png")) for stem, image in images.items()]
        classes = resolve_classes(root, class_names, masks.values())
        super().__init__(
            root, classes, None, pool, unknown_color, cache, cache_budget_gb, val_fraction, split_seed, split_dir
        )
        self.layout_problems = [
            f"{path}: mask without an image {root / image_dir / stem}.*; add the image or remove the mask"
            for stem, path in masks.items()
            if stem not in images
        ]
