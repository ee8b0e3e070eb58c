"""Binary cross-entropy for the boundary head, with a positive weight and void pixels skipped.

Written here because ``keras.losses.BinaryCrossentropy`` has neither an ignore value nor a
positive-class weight, and edges are only about 1 % of pixels.
"""

from __future__ import annotations

import keras
from keras import ops

from animalseg.losses.masking import masked_mean
from animalseg.numbers import is_number


@keras.saving.register_keras_serializable(package="animalseg")
class BoundaryBCE(keras.losses.Loss):
    """BCE on logits: ``pos_weight`` scales edge pixels; targets equal to ``ignore_index`` skip."""

    def __init__(self, pos_weight: float = 1.0, ignore_index: int = 255, name: str = "boundary_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if not (is_number(pos_weight) and pos_weight > 0):
            raise ValueError(f"pos_weight={pos_weight!r}: must be a number > 0")
        self.pos_weight = float(pos_weight)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        target = ops.cast(y_true, "float32")
        logits = ops.cast(y_pred, "float32")
        valid = ops.not_equal(target, float(self.ignore_index))
        target = ops.where(valid, target, 0.0)
        loss = self.pos_weight * target * ops.softplus(-logits) + (1.0 - target) * ops.softplus(logits)
        return masked_mean(loss, valid)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weight": self.pos_weight, "ignore_index": self.ignore_index}
