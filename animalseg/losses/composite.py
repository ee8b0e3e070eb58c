"""The training objective: a semantic loss plus ``boundary_weight`` x the boundary BCE."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from animalseg.errors import ConfigError
from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.focal import SparseFocalLoss
from animalseg.losses.region import SparseDiceLoss, SparseTverskyLoss, WeightedSum
from animalseg.losses.settings import LOSS_PARAMETERS, loss_setting_problems, semantic_parts


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

    def class_weighted(self) -> list[SparseFocalLoss]:
        """The semantic losses (or parts of a sum) that weight classes: what ``ClassWeightFade`` fades."""
        parts = self.semantic.losses if isinstance(self.semantic, WeightedSum) else [self.semantic]
        return [part for part in parts if isinstance(part, SparseFocalLoss) and part.class_weights is not None]


def _semantic(name: str, ignore_index: int, settings: dict) -> keras.losses.Loss:
    """One named semantic loss, given the config keys it takes (``LOSS_PARAMETERS``)."""
    arguments = {argument: settings[key] for key, argument in LOSS_PARAMETERS[name].items() if key in settings}
    return SEMANTIC_LOSSES[name](ignore_index=ignore_index, **arguments)


def build_segmentation_loss(
    semantic: str = "ce",
    semantic_weights: Sequence[float] | None = None,
    boundary_weight: float = 1.0,
    boundary_pos_weight: float = 1.0,
    ignore_index: int = 255,
    **settings,
) -> SegmentationLoss:
    """The objective from the flat ``loss.*`` config keys.

    ``semantic`` names a loss or a sum (``focal+dice``, weighted by ``semantic_weights``). Each
    part takes its own keys, so a sum does not hand one loss's parameters to another: ``alpha``,
    ``gamma`` and ``class_weights`` are the focal's, ``class_weights`` also CE's, and
    ``tversky_alpha`` / ``tversky_beta`` Tversky's (``class_weight_epochs`` is the run's: see
    ``ClassWeightFade``). A key set that no part takes is a ``ConfigError`` (``validate_config``
    runs the same check before any data is read).
    """
    problems = loss_setting_problems(semantic, {"semantic_weights": semantic_weights, **settings})
    if problems:
        raise ConfigError(problems)
    names = semantic_parts(semantic)
    losses = [_semantic(name, ignore_index, settings) for name in names]
    loss = losses[0] if len(losses) == 1 else WeightedSum(losses, semantic_weights, name=semantic.replace("+", "_"))
    return SegmentationLoss(
        semantic=loss,
        boundary=BoundaryBCE(pos_weight=boundary_pos_weight, ignore_index=ignore_index),
        boundary_weight=float(boundary_weight),
    )
