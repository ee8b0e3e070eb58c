"""The training objective: a semantic loss plus ``boundary_weight`` x the boundary BCE."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.focal import SparseFocalLoss
from animalseg.models.heads import BOUNDARY_HEAD, SEM_HEAD


def cross_entropy(ignore_index: int = 255) -> keras.losses.Loss:
    """Keras's sparse CE on logits; ``ignore_class`` masks void pixels out of the mean."""
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_index, name="cross_entropy"
    )


SEMANTIC_LOSSES = {"ce": cross_entropy, "focal": SparseFocalLoss}


@dataclass
class SegmentationLoss:
    """Per-head losses and weights, in the form ``model.compile`` takes."""

    semantic: keras.losses.Loss
    boundary: keras.losses.Loss
    boundary_weight: float

    def compile_kwargs(self) -> dict:
        return {
            "loss": {SEM_HEAD: self.semantic, BOUNDARY_HEAD: self.boundary},
            "loss_weights": {SEM_HEAD: 1.0, BOUNDARY_HEAD: self.boundary_weight},
        }


def build_segmentation_loss(
    semantic: str = "ce",
    boundary_weight: float = 1.0,
    boundary_pos_weight: float = 1.0,
    ignore_index: int = 255,
    **semantic_kwargs,
) -> SegmentationLoss:
    """The objective from flat config keys: ``semantic`` names the loss, the rest are its knobs."""
    if semantic not in SEMANTIC_LOSSES:
        raise ValueError(f"unknown semantic loss {semantic!r}; choose from {sorted(SEMANTIC_LOSSES)}")
    return SegmentationLoss(
        semantic=SEMANTIC_LOSSES[semantic](ignore_index=ignore_index, **semantic_kwargs),
        boundary=BoundaryBCE(pos_weight=boundary_pos_weight, ignore_index=ignore_index),
        boundary_weight=float(boundary_weight),
    )
