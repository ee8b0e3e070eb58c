"""The losses a ``loss.terms`` entry names (``_target_: animalseg.losses.<Class>``) and the objective."""

from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.composite import SegmentationLoss
from animalseg.losses.cross_entropy import SparseCrossEntropy
from animalseg.losses.focal import SparseFocalLoss
from animalseg.losses.region import SparseDiceLoss, SparseTverskyLoss, WeightedSum
from animalseg.losses.weighting import ClassWeighted

__all__ = [
    "BoundaryBCE",
    "ClassWeighted",
    "SegmentationLoss",
    "SparseCrossEntropy",
    "SparseDiceLoss",
    "SparseFocalLoss",
    "SparseTverskyLoss",
    "WeightedSum",
]
