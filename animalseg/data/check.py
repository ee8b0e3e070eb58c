"""The dataset checker: every problem of a dataset at once, each with its file and reason.

``quick_check`` is the cheap part (split lists and file existence, no decoding) that training
runs before building a model; ``check_dataset`` decodes everything and also finds size
mismatches, unknown mask values and train/val duplicates, and gathers the statistics.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from animalseg.data.dataset import SPLITS, SegmentationDataset
from animalseg.data.layout import FileDataset
from animalseg.data.pipeline import mask_at_base_size
from animalseg.data.stats import class_pixels, class_weights, containing_pixels
from animalseg.errors import DataError


@dataclass
class DatasetReport:
    """Problems found, and what the dataset holds: ``pixels`` per class at native size, and
    ``train_pixels`` at the training scale ``base_size`` with ``train_image_pixels`` (per class, the
    pixels of the train images containing it), which the class weights come from."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, Counter] = field(default_factory=dict)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    base_size: int | None = None
    train_pixels: np.ndarray | None = None
    train_image_pixels: np.ndarray | None = None


def quick_check(dataset: SegmentationDataset) -> list[str]:
    """Problems visible without decoding: empty splits, repeated ids, missing files."""
    problems: list[str] = []
    ids = {split: dataset.ids(split) for split in SPLITS}
    for split, listed in ids.items():
        if not listed:
            problems.append(f"split '{split}' is empty{_where(dataset, split)}")
        for sample_id, times in Counter(listed).items():
            if times > 1:
                problems.append(f"{sample_id}: listed {times} times in '{split}'{_where(dataset, split, sample_id)}")
    for sample_id in sorted(set(ids["train"]) & set(ids["val"])):
        problems.append(f"{sample_id}: listed in both 'train' and 'val'")
    if isinstance(dataset, FileDataset):
        problems.extend(dataset.layout_problems)
        for split in SPLITS:
            problems.extend(dataset.missing_files(split))
    return problems


def require_quick_check(dataset: SegmentationDataset) -> None:
    """Raise ``DataError`` with every cheap problem (used before training starts)."""
    problems = quick_check(dataset)
    if problems:
        raise DataError([*problems, "(run scripts/check_dataset.py with the same data overrides for a full report)"])


def _where(dataset: SegmentationDataset, split: str, sample_id: str | None = None) -> str:
    """Where a split's ids come from (its list files, the one of ``sample_id``'s root when given,
    or the made split)."""
    return f" (from {dataset.split_source(split, sample_id)})" if isinstance(dataset, FileDataset) else ""


def _decode(dataset: SegmentationDataset, split: str, index: int, problems: list[str]):
    """(image, mask) or None, adding every problem of this sample."""
    if isinstance(dataset, FileDataset):
        pair, found = dataset.inspect(split, index)
        problems.extend(found)
        return pair
    try:
        return dataset.load_uncached(split, index)
    except DataError as error:
        problems.extend(error.problems)
        return None


def pixel_digest(image: np.ndarray) -> str:
    """Equal for pixel-identical images (the checker's duplicates; k-fold keeps them together)."""
    return hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()


def _file_digest(dataset: SegmentationDataset, split: str, index: int) -> str | None:
    if not isinstance(dataset, FileDataset):
        return None
    path = dataset.image_file(split, index)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def empty_classes(report: DatasetReport, dataset: SegmentationDataset) -> list[str]:
    """Warnings for classes without a single pixel in train (nothing to learn them from; a class
    missing from a small val split alone is common and not warned about)."""
    warnings = []
    for index, name in enumerate(dataset.class_names):
        if report.counts.get("train") and report.pixels["train"][index] == 0:
            where = "train or val" if report.pixels["val"][index] == 0 else "train"
            warnings.append(
                f"class {index} '{name}' has no pixels in {where}: check the class list "
                "(data.dataset.class_names, classes.txt or labelmap.txt) against the masks"
            )
    return warnings


def check_dataset(dataset: SegmentationDataset, base_size: int | None = None) -> DatasetReport:
    """Decode every sample and report all problems and the dataset's statistics (the training
    split's class pixels also at ``base_size``, the scale training resizes to)."""
    report = DatasetReport(problems=quick_check(dataset), base_size=base_size)
    report.train_pixels = np.zeros(dataset.num_classes, dtype=np.int64)
    report.train_image_pixels = np.zeros(dataset.num_classes, dtype=np.int64)
    file_hashes: dict[str, dict[str, list[str]]] = {s: defaultdict(list) for s in SPLITS}
    pixel_hashes: dict[str, dict[str, list[str]]] = {s: defaultdict(list) for s in SPLITS}
    for split in SPLITS:
        ids = dataset.ids(split)
        report.counts[split] = len(ids)
        report.sizes[split] = Counter()
        report.pixels[split] = np.zeros(dataset.num_classes, dtype=np.int64)
        for index, sample_id in enumerate(ids):
            digest = _file_digest(dataset, split, index)
            if digest:
                file_hashes[split][digest].append(sample_id)
            pair = _decode(dataset, split, index, report.problems)
            if pair is None:
                continue
            image, mask = pair
            report.sizes[split][f"{image.shape[1]}x{image.shape[0]}"] += 1
            report.pixels[split] += class_pixels(mask, dataset.num_classes, dataset.ignore_index)
            if split == "train":
                scaled = mask_at_base_size(mask, base_size)
                scaled_pixels = class_pixels(scaled, dataset.num_classes, dataset.ignore_index)
                report.train_pixels += scaled_pixels
                report.train_image_pixels += containing_pixels(scaled_pixels)
            pixel_hashes[split][pixel_digest(image)].append(sample_id)
    for kind, hashes in (("byte-identical", file_hashes), ("pixel-identical", pixel_hashes)):
        for key in sorted(set(hashes["train"]) & set(hashes["val"])):
            train, val = sorted(set(hashes["train"][key])), sorted(set(hashes["val"][key]))
            if train == val:  # the same id in both lists, reported above
                continue
            report.problems.append(
                f"{kind} images across train and val: train {', '.join(train)} = val {', '.join(val)}"
            )
    report.warnings = empty_classes(report, dataset)
    return report


def format_report(report: DatasetReport, dataset: SegmentationDataset, weighting: str = "median") -> str:
    """The human summary: counts, sizes, class frequencies and the auto class weights (those
    training computes: from the train split at the training scale)."""
    lines = []
    for split in SPLITS:
        sizes = ", ".join(f"{size} ({n})" for size, n in report.sizes[split].most_common())
        lines.append(f"{split}: {report.counts[split]} images; sizes: {sizes or '-'}")
    train = report.pixels["train"]
    weights = class_weights(report.train_pixels, weighting, report.train_image_pixels)
    total = {split: max(int(report.pixels[split].sum()), 1) for split in SPLITS}
    scale = "native size" if report.base_size is None else f"data.base_size={report.base_size}"
    lines.append(
        f"\n{'class':<16}{'train %':>9}{'val %':>9}{'weight':>9}   "
        f"(% at native size; weight: {weighting} frequency at {scale}, as training counts it)"
    )
    for index, name in enumerate(dataset.class_names):
        lines.append(
            f"{name:<16}{100 * train[index] / total['train']:>9.2f}"
            f"{100 * report.pixels['val'][index] / total['val']:>9.2f}{weights[index]:>9.3f}"
        )
    return "\n".join(lines)
