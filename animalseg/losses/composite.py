"""The training objective: a semantic loss plus ``boundary_weight`` x the boundary BCE."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.focal import SparseFocalLoss
from animalseg.losses.region import SparseDiceLoss, SparseTverskyLoss, WeightedSum


def cross_entropy(ignore_index: int = 255, class_weights: Sequence[float] | None = None) -> keras.losses.Loss:
    """Keras's sparse CE on logits (``ignore_class`` masks void pixels out of the mean); with
    ``class_weights``, the focal loss with gamma 0 and no alpha, which is weighted CE (Keras's
    sparse CE takes no per-class weights)."""
    if class_weights is not None:
        return SparseFocalLoss(
            alpha=None, gamma=0.0, ignore_index=ignore_index, class_weights=class_weights, name="weighted_cross_entropy"
        )
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_index, name="cross_entropy")


SEMANTIC_LOSSES: dict[str, Callable[..., keras.losses.Loss]] = {
    "ce": cross_entropy,
    "focal": SparseFocalLoss,
    "dice": SparseDiceLoss,
    "tversky": SparseTverskyLoss,
}


@dataclass
class SegmentationLoss:
    """Per-head losses and weights, in the form ``model.compile`` takes."""

    semantic: keras.losses.Loss
    boundary: keras.losses.Loss
    boundary_weight: float

    def compile_kwargs(self, semantic_head: str, boundary_head: str) -> dict:
        """``model.compile``'s ``loss`` and ``loss_weights`` for the model's output names (the
        model names its heads: losses know nothing of models)."""
        return {
            "loss": {semantic_head: self.semantic, boundary_head: self.boundary},
            "loss_weights": {semantic_head: 1.0, boundary_head: self.boundary_weight},
        }


def _semantic(name: str, params: dict) -> keras.losses.Loss:
    """One named semantic loss, given the params its constructor takes."""
    if name not in SEMANTIC_LOSSES:
        raise ValueError(f"unknown semantic loss {name!r}; choose from {sorted(SEMANTIC_LOSSES)}")
    factory = SEMANTIC_LOSSES[name]
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in params.items() if k in accepted})


def build_segmentation_loss(
    semantic: str = "ce",
    semantic_weights: Sequence[float] | None = None,
    boundary_weight: float = 1.0,
    boundary_pos_weight: float = 1.0,
    ignore_index: int = 255,
    class_weights: Sequence[float] | None = None,
    **params,
) -> SegmentationLoss:
    """The objective from flat config keys.

    ``semantic`` names a loss or a sum (``focal+dice``, weighted by ``semantic_weights``); the
    other keys (``alpha``, ``gamma``, ``beta``) go to the losses that take them; ``class_weights``
    (one per class) apply to CE and focal.
    """
    shared = {
        "ignore_index": ignore_index,
        "class_weights": None if class_weights is None else list(class_weights),
        **params,
    }
    names = [part.strip() for part in semantic.split("+")]
    losses = [_semantic(name, shared) for name in names]
    loss = losses[0] if len(losses) == 1 else WeightedSum(losses, semantic_weights, name=semantic.replace("+", "_"))
    return SegmentationLoss(
        semantic=loss,
        boundary=BoundaryBCE(pos_weight=boundary_pos_weight, ignore_index=ignore_index),
        boundary_weight=float(boundary_weight),
    )
