"""Pascal-VOC-style datasets: one root, or several roots (one per sub-folder) merged.

A root holds ``JPEGImages/<id>.{jpg,png}``, ``SegmentationClass/<id>.png`` and, usually,
``ImageSets/Segmentation/{train,val}.txt``. Without train and val lists (none at all, or only
CVAT's ``default.txt``) a train/val split is made (``layout.py``). Classes: ``classes.py``
(``labelmap.txt`` → masks decoded by colour whatever their PNG mode; otherwise palette/greyscale
values are class indices, 255 = void, and RGB masks use the VOC palette).
"""

from __future__ import annotations

from pathlib import Path

from animalseg.data.classes import resolve_classes
from animalseg.data.images import IMAGE_EXTENSIONS, read_id_list
from animalseg.data.layout import FileDataset, Sample, index_by_stem, require_root
from animalseg.errors import DataError

SPLIT_LIST = Path("ImageSets") / "Segmentation"


class VOCDataset(FileDataset):
    """A VOC root, or a folder whose sub-folders are VOC roots (merged, ids ``<sub>/<id>``).

    ``image_dir`` / ``mask_dir`` rename ``JPEGImages`` / ``SegmentationClass``; the split options
    (``val_fraction``, ``split_seed``, ``split_dir``) are ``FileDataset``'s.
    """

    def __init__(
        self,
        root: str | Path,
        class_names: str | list[str] | None = None,
        unknown_color: str = "error",
        image_dir: str = "JPEGImages",
        mask_dir: str = "SegmentationClass",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        root = require_root(root)
        self.image_dir, self.mask_dir = image_dir, mask_dir
        self.voc_roots = self._find_roots(root)
        lists, pool = self._read_lists()
        masks = (s.mask for s in [*pool, *(s for listed in lists.values() for s in listed)] if s.mask)
        classes = resolve_classes(root, class_names, masks)
        super().__init__(
            root, classes, lists, pool, unknown_color, cache, cache_budget_gb, val_fraction, split_seed, split_dir
        )

    def _is_root(self, folder: Path) -> bool:
        return (folder / SPLIT_LIST).is_dir() or (folder / self.image_dir).is_dir()

    def _find_roots(self, root: Path) -> list[tuple[str, Path]]:
        if self._is_root(root):
            return [("", root)]
        roots = sorted((sub.name, sub) for sub in root.iterdir() if sub.is_dir() and self._is_root(sub))
        if not roots:
            raise DataError(
                f"data.root: {root} has neither {SPLIT_LIST}/ nor {self.image_dir}/, and neither has any of its "
                "sub-folders (a VOC root or a folder of VOC roots); for a plain images/ + masks/ folder use "
                "data=folder"
            )
        return roots

    def _read_lists(self) -> tuple[dict[str, list[Sample]], list[Sample]]:
        """Samples of every list file by list name, and those of roots without lists."""
        lists: dict[str, list[Sample]] = {}
        pool: list[Sample] = []
        for prefix, root in self.voc_roots:
            images = index_by_stem(root / self.image_dir, IMAGE_EXTENSIONS)
            list_files = sorted((root / SPLIT_LIST).glob("*.txt")) if (root / SPLIT_LIST).is_dir() else []
            for list_file in list_files:
                lists.setdefault(list_file.stem, []).extend(
                    self._sample(prefix, root, sample_id, images) for sample_id in read_id_list(list_file)
                )
            if not list_files:
                pool.extend(self._sample(prefix, root, sample_id, images) for sample_id in images)
        if "train" in lists and "val" in lists and pool:
            root = next(r for _, r in self.voc_roots if not (r / SPLIT_LIST).is_dir())
            raise DataError(
                f"{root}: has no {SPLIT_LIST}/train.txt and val.txt while the other roots have them; "
                "add lists there, or delete every list to have a split made"
            )
        if not ("train" in lists and "val" in lists):  # only default.txt (CVAT), or no lists
            pool.extend(s for name, listed in lists.items() if name != "test" for s in listed)
            lists = {name: listed for name, listed in lists.items() if name == "test"}
        return lists, pool

    def _sample(self, prefix: str, root: Path, sample_id: str, images: dict[str, Path]) -> Sample:
        return Sample(
            id=f"{prefix}/{sample_id}" if prefix else sample_id,
            image=images.get(sample_id, root / self.image_dir / f"{sample_id}.jpg"),
            mask=root / self.mask_dir / f"{sample_id}.png",
        )

    def describe_image(self, sample: Sample) -> str:
        return f"{sample.image.with_suffix('')}.{{jpg,jpeg,png}}"

    def split_source(self, split: str, sample_id: str | None = None) -> str:
        if self.made_split and split in ("train", "val"):
            return super().split_source(split)
        roots = [r for prefix, r in self.voc_roots if sample_id is None or sample_id.startswith(f"{prefix}/")]
        return ", ".join(str(root / SPLIT_LIST / f"{split}.txt") for root in roots or [self.root])
