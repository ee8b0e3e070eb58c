"""What every on-disk layout shares: samples listed per split, classes, the made split, and
decoding with every problem named by its file.

A layout (``voc.py``, ``folder.py``, ``cvat.py``, ``coco.py``, ``labelme.py``) finds its samples
and classes, then hands them here: either split lists (``train``/``val``, maybe ``test``), or one
pool that is split by ``val_fraction`` and ``split_seed`` (``splits.py``) unless
``split_dir`` holds lists made before (a run writes the split it made to ``<run>/splits/``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from animalseg.data.classes import Classes
from animalseg.data.dataset import SPLITS, SegmentationDataset
from animalseg.data.images import MaskDecoder, image_size, read_id_list, read_image
from animalseg.data.splits import stratified_split
from animalseg.errors import DataError

log = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Sample:
    """One image with where its labels are: a PNG ``mask``, or ``shapes`` a JSON layout rasterises."""

    id: str
    image: Path
    mask: Path | None = None
    shapes: Any = field(default=None, compare=False)


def require_root(root: str | Path) -> Path:
    """The dataset folder, or the one-line error naming ``data.root``."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data.root: dataset folder {path} does not exist (set data.root=/path/to/dataset)")
    return path


class FileDataset(SegmentationDataset):
    """Samples from files, split by lists or by a made split (see the module docstring).

    ``unknown_color``: what a mask value outside the classes does, ``error`` or ``ignore`` (→ the
    ignore index). Subclasses may override ``read_labels`` (JSON shapes) and ``sample_classes``.
    """

    split_lists_from = "split lists"  # what the lists are called in messages

    def __init__(
        self,
        root: Path,
        classes: Classes,
        lists: dict[str, list[Sample]] | None,
        pool: list[Sample] | None,
        unknown_color: str = "error",
        cache: bool | str = True,
        cache_budget_gb: float | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        split_dir: str | None = None,
    ):
        if unknown_color not in ("error", "ignore"):
            raise DataError(f"data.dataset.unknown_color must be 'error' or 'ignore', got {unknown_color!r}")
        super().__init__(classes.names, classes.colors, cache=cache, cache_budget_gb=cache_budget_gb)
        self.root = root
        self.classes = classes
        self.unknown_color = unknown_color
        self.decoder = MaskDecoder(classes.colors, classes.by_colour, classes.source)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self.made_split = False
        self.layout_problems: list[str] = []  # files the layout could not pair (masks without images)
        self._decoded_bytes: dict[str, int] = {}
        if split_dir is not None:
            self.samples = self._read_split_dir(Path(split_dir).expanduser(), lists, pool)
        elif lists is not None and all(lists.get(split) for split in SPLITS):
            self.samples = dict(lists)
        else:
            self.samples = {**(lists or {}), **self._make_split(pool or [])}
            self.made_split = True

    # -- splits --------------------------------------------------------------------------------

    def _read_split_dir(
        self, folder: Path, lists: dict[str, list[Sample]] | None, pool: list[Sample] | None
    ) -> dict[str, list[Sample]]:
        everything = {s.id: s for s in [*(pool or []), *(s for listed in (lists or {}).values() for s in listed)]}
        samples: dict[str, list[Sample]] = {}
        for split in SPLITS:
            path = folder / f"{split}.txt"
            if not path.is_file():
                raise DataError(f"data.dataset.split_dir: {path} not found (a run writes it to <run folder>/splits)")
            unknown = [i for i in read_id_list(path) if i not in everything]
            if unknown:
                raise DataError(
                    f"{path}: id {unknown[0]!r} ({len(unknown)} in all) is not in {self.root}; "
                    "the list belongs to another dataset, or set data.dataset.split_dir=null to split anew"
                )
            samples[split] = [everything[i] for i in read_id_list(path)]
        if lists and lists.get("test"):
            samples["test"] = lists["test"]
        return samples

    def _make_split(self, pool: list[Sample]) -> dict[str, list[Sample]]:
        if not pool:
            return {split: [] for split in SPLITS}
        keys = [self._file_key(sample) for sample in pool]
        classes = [self.sample_classes(sample) for sample in pool]
        train, val = stratified_split(keys, classes, self.val_fraction, self.split_seed)
        log.info(
            "%s: no train/val lists, made a split of %d train and %d val images (data.val_fraction=%s, "
            "data.split_seed=%d)",
            self.root,
            len(train),
            len(val),
            self.val_fraction,
            self.split_seed,
        )
        return {"train": [pool[i] for i in train], "val": [pool[i] for i in val]}

    @staticmethod
    def _file_key(sample: Sample) -> str:
        if not sample.image.is_file():
            return f"missing:{sample.id}"
        return hashlib.sha256(sample.image.read_bytes()).hexdigest()

    def sample_classes(self, sample: Sample) -> frozenset[int]:
        """The classes a sample contains (to stratify the made split); none when it cannot be read
        (the checker names the file)."""
        try:
            mask, _ = self.read_labels(sample, None)
        except DataError:
            return frozenset()
        return frozenset(int(c) for c in np.unique(mask) if c != self.ignore_index)

    def split_source(self, split: str, sample_id: str | None = None) -> str:
        """Where a split's ids (or that of ``sample_id``) come from, for messages."""
        if self.made_split and split in SPLITS:
            return "the split made with data.val_fraction"
        return self.split_lists_from

    # -- reading -------------------------------------------------------------------------------

    def ids(self, split: str) -> list[str]:
        return [sample.id for sample in self.samples.get(split, [])]

    def masks_fingerprint(self, split: str) -> str:
        """Path, size and modification time of each mask file, with the classes, colours, the
        handling of unknown values and the reading code: a mask edited, added or decoded otherwise
        changes it, without decoding any. Labels drawn from JSON shapes are hashed as decoded."""
        samples = self.samples.get(split, [])
        if any(sample.mask is None for sample in samples):
            return super().masks_fingerprint(split)
        stats = []
        for path in (sample.mask for sample in samples):
            stat = path.stat() if path.is_file() else None
            stats.append([str(path.resolve()), *((stat.st_size, stat.st_mtime_ns) if stat else (None, None))])
        code = hashlib.sha256(Path(inspect.getfile(type(self))).read_bytes() + Path(__file__).read_bytes())
        settings = [type(self).__name__, code.hexdigest(), self.class_names, np.asarray(self.colors).tolist()]
        settings += [getattr(self, "unknown_color", None), split, self.ids(split)]
        return hashlib.sha256(json.dumps([*settings, stats]).encode()).hexdigest()

    def sample(self, split: str, index: int) -> Sample:
        return self.samples[split][index]

    def read_labels(self, sample: Sample, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
        """The (H, W) class-index mask of ``sample`` (``size`` = the image's (H, W), None when
        unknown) and one line per value that is no class (mapped to the ignore index)."""
        if sample.mask is None:
            raise DataError(f"{sample.image}: no mask for this image")
        mask, unknown = self.decoder.decode(sample.mask)
        return mask, self.decoder.problems(sample.mask, unknown)

    def load_uncached(self, split: str, index: int) -> Pair:
        pair, problems = self.inspect(split, index)
        if pair is None:
            raise DataError(problems or self.missing_files_of(self.samples[split][index], split))
        if problems and self.unknown_color == "error":
            raise DataError(problems)
        return pair

    def inspect(self, split: str, index: int) -> tuple[Pair | None, list[str]]:
        """Decode one sample and name every problem with it (the checker's view: nothing raised)."""
        sample = self.samples[split][index]
        problems: list[str] = []
        image = mask = None
        if sample.image.is_file():  # a missing file is one of ``missing_files``' lines
            try:
                image = read_image(sample.image)
            except DataError as error:
                problems.extend(error.problems)
        if sample.mask is None or sample.mask.is_file():
            try:
                mask, unknown = self.read_labels(sample, None if image is None else image.shape[:2])
                problems.extend(unknown)
            except DataError as error:
                problems.extend(error.problems)
        if image is None or mask is None:
            return None, problems
        if image.shape[:2] != mask.shape:
            labels = sample.mask or sample.image
            problems.append(
                f"{sample.image}: image is {image.shape[1]}x{image.shape[0]} but its mask is "
                f"{mask.shape[1]}x{mask.shape[0]} ({labels}); save the mask at the image's size"
            )
            return None, problems
        return (image, mask), problems

    def missing_files(self, split: str) -> list[str]:
        """One line per image or mask file a split names that is not there."""
        return [problem for sample in self.samples.get(split, []) for problem in self.missing_files_of(sample, split)]

    def missing_files_of(self, sample: Sample, split: str) -> list[str]:
        """The lines of ``missing_files`` for one sample."""
        problems = []
        if not sample.image.is_file():
            problems.append(f"{self.describe_image(sample)}: image of '{sample.id}' ({split}) not found")
        if sample.mask is not None and not sample.mask.is_file():
            problems.append(f"{sample.mask}: mask of '{sample.id}' ({split}) not found; add it or remove the image")
        return problems

    def describe_image(self, sample: Sample) -> str:
        return str(sample.image)

    def decoded_bytes(self, split: str) -> int | None:
        """Image and mask bytes of the decoded split, from the image files' headers."""
        if split not in self._decoded_bytes:
            total = 0
            for sample in self.samples.get(split, []):
                try:
                    width, height = self.image_size(sample)
                except DataError:
                    continue
                total += width * height * 4  # RGB image + one-byte mask
            self._decoded_bytes[split] = total
        return self._decoded_bytes[split]

    def image_size(self, sample: Sample) -> tuple[int, int]:
        """(width, height) of a sample's image without decoding it."""
        return image_size(sample.image)

    def image_file(self, split: str, index: int) -> Path:
        return self.samples[split][index].image

    def split_ids(self) -> dict[str, list[str]]:
        """The train and val ids (what a made split is written as)."""
        return {split: self.ids(split) for split in SPLITS}


def index_by_stem(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Files of ``folder`` (recursively) with one of ``extensions``, keyed by their path relative to
    ``folder`` without the suffix (``sub/name``)."""
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file())
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in files}
