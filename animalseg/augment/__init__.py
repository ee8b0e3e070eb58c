"""Augmentation of (image, mask) pairs: geometry from the pipeline plus optional extra ops."""

from animalseg.augment.ops import ColorJitter, ElasticDeformation, RandomRotation
from animalseg.augment.policy import Augmentation

__all__ = ["Augmentation", "ColorJitter", "ElasticDeformation", "RandomRotation"]
