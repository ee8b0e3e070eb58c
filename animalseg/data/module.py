"""The ``data`` config group's object: a dataset plus how it is batched and evaluated."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.data.crops import crop_schedule_problem
from animalseg.data.dataset import MISSING_ROOT, SegmentationDataset
from animalseg.data.folds import FoldSplit
from animalseg.data.pipeline import AugmentationPolicy, steps_per_epoch, train_pipeline
from animalseg.errors import AnimalsegError, ConfigError, DataError


class DataModule:
    """Builds the dataset (``dataset(root=root)`` when a root is given) and its pipelines.

    ``base_size``: training images are first resized so their long side is this many pixels
    (``None`` = native), then randomly rescaled and cropped to ``crop_size``.
    ``crop_schedule``: ``[first epoch, side]`` pairs that change the crop side from those epochs
    on, ``crop_size`` before the first (progressive resizing: ``crop_size=160`` with
    ``[[10, 192], [20, 224]]`` trains on small crops first, whose steps are cheaper).
    ``eval_size``: validation images are predicted with their long side resized to this many
    pixels (``None`` = native size) and scored at native resolution; keep it equal to
    ``base_size`` so the model sees objects at the scale it was trained at.
    ``antialias``: low-pass filter when downscaling images, in training's resize and in
    evaluation's and prediction's alike (bilinear without it, as before).
    ``val_fraction`` / ``split_seed``: the train/val split a file dataset makes when it has no
    split lists (passed to it with the root).
    """

    @classmethod
    def from_config(cls, data_cfg: DictConfig) -> DataModule:
        """A ``data`` group node's DataModule. A data error raised while building it is raised as
        itself (one line naming the file and the fix), not inside Hydra's "Error in call to target"."""
        if OmegaConf.is_missing(data_cfg, "root"):
            raise ConfigError(MISSING_ROOT)
        try:
            return instantiate(data_cfg)
        except InstantiationException as error:
            cause: BaseException | None = error
            while cause is not None and not isinstance(cause, AnimalsegError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise cause from None

    def __init__(
        self,
        dataset: SegmentationDataset | Callable[..., SegmentationDataset],
        root: str | None = None,
        crop_size: int = 256,
        crop_schedule: Sequence[Sequence[int]] | None = None,
        batch_size: int = 8,
        base_size: int | None = None,
        eval_size: int | None = None,
        eval_batch_size: int = 4,
        boundary_width: int = 1,
        antialias: bool = False,
        folds: int | None = None,
        fold: int = 0,
        fold_seed: int = 0,
        test_split: str | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
    ):
        if isinstance(dataset, SegmentationDataset):
            self.source = dataset
        elif root is not None:
            self.source = dataset(root=root, val_fraction=val_fraction, split_seed=split_seed)
        else:
            self.source = dataset()
        self.folds, self.fold, self.fold_seed = folds, fold, int(fold_seed)
        self._folded: SegmentationDataset | None = None
        if test_split is not None and not self.source.ids(test_split):
            raise DataError(f"data.test_split={test_split}: the dataset has no such split, or it is empty")
        self.test_split = test_split or ("test" if self.source.ids("test") else None)
        self.crop_size = int(crop_size)
        if crop_schedule is not None and (problem := crop_schedule_problem(crop_schedule)) is not None:
            raise ValueError(f"crop_schedule={crop_schedule!r}: {problem}")
        self.crop_schedule = tuple(tuple(pair) for pair in crop_schedule or ())
        self.batch_size = int(batch_size)
        self.base_size = None if base_size is None else int(base_size)
        self.eval_size = None if eval_size is None else int(eval_size)
        self.eval_batch_size = int(eval_batch_size)
        self.boundary_width = int(boundary_width)
        self.antialias = bool(antialias)

    @property
    def dataset(self) -> SegmentationDataset:
        """The dataset trained and validated on: the source, or its k-fold split (made on first use,
        after ``build_data`` checked the source)."""
        if self.folds is None:
            return self.source
        if self._folded is None:
            self._folded = FoldSplit(self.source, self.folds, self.fold, self.fold_seed)
        return self._folded

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.dataset, self.batch_size)

    def train_data(
        self, augmentation: AugmentationPolicy, seed: int, target_names: tuple[str, str], start_epoch: int = 0
    ) -> tf.data.Dataset:
        """Endless training batches from ``start_epoch`` (``steps_per_epoch`` per epoch), targets
        keyed by ``target_names`` (the model's semantic and boundary output names)."""
        scale: Sequence[float] = augmentation.scale_range
        return train_pipeline(
            self.dataset,
            crop_size=self.crop_size,
            crop_schedule=self.crop_schedule,
            batch_size=self.batch_size,
            seed=seed,
            target_names=target_names,
            scale_range=(float(scale[0]), float(scale[1])),
            hflip=augmentation.hflip,
            augment=augmentation if augmentation.ops else None,
            boundary_width=self.boundary_width,
            start_epoch=start_epoch,
            base_size=self.base_size,
            antialias=self.antialias,
        )
