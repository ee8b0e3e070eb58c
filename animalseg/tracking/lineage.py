"""What a run trained and validated on, as MLflow datasets: the runs table's Dataset column."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset

from animalseg.data.dataset import SegmentationDataset

CONTEXTS = {"train": "training", "val": "validation"}


def dataset_digest(root: str, ids: list[str]) -> str:
    """Short hash of the root and the split's id list: the same digest means the same samples."""
    return hashlib.sha256("\n".join([root, *ids]).encode()).hexdigest()[:10]


def split_dataset(dataset: SegmentationDataset, split: str) -> MetaDataset:
    """One split as an MLflow dataset, named after the data, ``<root folder's name>-<split>``
    (``animals-train``; ``synthetic-train`` for the generated set), sourced at the root folder (or
    the code that generates it), with a digest of the root and the split's id list."""
    root = getattr(dataset, "root", None)
    source: DatasetSource
    if root is not None:
        root = str(Path(root).resolve())
        source = resolve_dataset_source(root)  # MLflow's local-folder source
    else:
        source = CodeDatasetSource({"generator": f"{type(dataset).__module__}.{type(dataset).__name__}"})
    kind = Path(root).name if root is not None else type(dataset).__name__.removesuffix("Dataset").lower()
    return MetaDataset(source, name=f"{kind}-{split}", digest=dataset_digest(str(root), dataset.ids(split)))


def split_datasets(dataset: SegmentationDataset) -> dict[str, MetaDataset]:
    """The train and val splits as MLflow datasets, keyed by their MLflow context (``training``,
    ``validation``)."""
    return {context: split_dataset(dataset, split) for split, context in CONTEXTS.items()}
