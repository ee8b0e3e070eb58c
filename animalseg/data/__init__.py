"""Datasets (synthetic, VOC-style) and the tf.data pipeline that feeds them to a model."""

from animalseg.data.dataset import IGNORE_INDEX, SegmentationDataset

__all__ = ["IGNORE_INDEX", "SegmentationDataset"]
