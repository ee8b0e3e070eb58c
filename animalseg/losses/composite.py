"""The training objective: the semantic head's terms, summed with their weights, plus
``boundary_weight`` x the boundary BCE on the boundary head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import keras

from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.region import WeightedSum
from animalseg.losses.weighting import ClassWeighted
from animalseg.numbers import is_number


@dataclass
class SegmentationLoss:
    """Per-head losses and weights, in the form ``model.compile`` takes."""

    semantic: keras.losses.Loss
    boundary: keras.losses.Loss
    boundary_weight: float

    @classmethod
    def from_terms(
        cls,
        terms: Mapping[str, tuple[keras.losses.Loss, float]],
        boundary_weight: float = 1.0,
        boundary_pos_weight: float = 1.0,
        ignore_index: int = 255,
    ) -> SegmentationLoss:
        """The objective of ``terms`` (name → (loss, weight)) on the semantic head: one term as it
        is when its weight is 1, else their weighted sum. Raises ``ValueError`` naming the argument."""
        if not terms:
            raise ValueError("terms={}: the semantic head needs at least one term (e.g. loss=ce)")
        for key, value in (
            ("boundary_weight", boundary_weight),
            *((f"terms.{n}.weight", w) for n, (_, w) in terms.items()),
        ):
            if not (is_number(value) and value >= 0):
                raise ValueError(f"{key}={value!r}: must be a number >= 0")
        (loss, weight), *rest = terms.values()
        semantic = (
            loss
            if not rest and weight == 1
            else WeightedSum([t for t, _ in terms.values()], [w for _, w in terms.values()], name="_".join(terms))
        )
        return cls(
            semantic=semantic,
            boundary=BoundaryBCE(pos_weight=boundary_pos_weight, ignore_index=ignore_index),
            boundary_weight=float(boundary_weight),
        )

    def compile_kwargs(self, semantic_head: str, boundary_head: str) -> dict:
        """``model.compile``'s ``loss`` and ``loss_weights`` for the model's output names (the
        model names its heads: losses know nothing of models)."""
        return {
            "loss": {semantic_head: self.semantic, boundary_head: self.boundary},
            "loss_weights": {semantic_head: 1.0, boundary_head: self.boundary_weight},
        }

    def class_weighted(self) -> list[ClassWeighted]:
        """The semantic terms that weight classes: what ``ClassWeightFade`` fades."""
        parts = self.semantic.losses if isinstance(self.semantic, WeightedSum) else [self.semantic]
        return [part for part in parts if isinstance(part, ClassWeighted) and part.class_weights is not None]
