"""A CVAT "Segmentation mask 1.1" export, as CVAT writes it.

``labelmap.txt`` (classes and mask colours), ``SegmentationClass/<id>.png`` (RGB colour masks),
``JPEGImages/<id>.<ext>`` (when exported with "Save images"), ``ImageSets/Segmentation/default.txt``
(one task or job) or per-subset lists (``train.txt``, ``val.txt``, ...). With only ``default.txt``
a train/val split is made. It is the VOC layout with a labelmap required.
"""

from __future__ import annotations

from pathlib import Path

from animalseg.data.classes import LABELMAP_FILE
from animalseg.data.layout import Sample, require_root
from animalseg.data.voc import VOCDataset
from animalseg.errors import DataError


class CVATDataset(VOCDataset):
    """A CVAT export folder (or a folder of several exports, merged)."""

    def __init__(
        self,
        root: str | Path,
        unknown_color: str = "error",
        image_dir: str = "JPEGImages",
        mask_dir: str = "SegmentationClass",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        folder = require_root(root)
        if not (folder / LABELMAP_FILE).is_file():
            raise DataError(
                f"{folder / LABELMAP_FILE}: not found; export the task from CVAT as 'Segmentation mask 1.1' "
                "(it writes labelmap.txt), or use data=voc / data=folder for other masks"
            )
        super().__init__(
            folder,
            None,
            unknown_color,
            image_dir,
            mask_dir,
            cache,
            cache_budget_gb,
            val_fraction,
            split_seed,
            split_dir,
        )

    def missing_files(self, split: str) -> list[str]:
        problems = super().missing_files(split)
        if any("image of" in problem for problem in problems):
            problems.append(f"(export from CVAT with 'Save images' ticked, or copy the images into {self.image_dir}/)")
        return problems

    def describe_image(self, sample: Sample) -> str:
        return f"{sample.image.with_suffix('')}.{{jpg,jpeg,png,...}}"
