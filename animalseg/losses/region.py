"""Region losses (Dice, Tversky) for sparse labels with an ignore index.

Keras's ``Dice`` and ``Tversky`` take dense probabilities and targets and know no ignore index,
so these wrappers apply softmax, one-hot encode, zero void pixels in both tensors, and then call
the built-ins over (batch, height, width): one score per class over the batch, averaged.
A class absent from both target and prediction of a batch scores a constant loss of 1 (no
gradient), as in Keras.
"""

from __future__ import annotations

import keras
from keras import ops

from animalseg.losses.masking import replica_share
from animalseg.numbers import is_number


def _dense(y_true, y_pred, ignore_index: int):
    labels = ops.cast(y_true, "int32")
    valid = ops.expand_dims(ops.cast(ops.not_equal(labels, ignore_index), "float32"), -1)
    probabilities = ops.softmax(ops.cast(y_pred, "float32"), axis=-1) * valid
    targets = ops.one_hot(ops.where(labels == ignore_index, 0, labels), y_pred.shape[-1]) * valid
    return targets, probabilities


@keras.saving.register_keras_serializable(package="animalseg")
class SparseDiceLoss(keras.losses.Loss):
    """1 - Dice per class on softmax probabilities, void pixels excluded."""

    def __init__(self, ignore_index: int = 255, name: str = "sparse_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        targets, probabilities = _dense(y_true, y_pred, self.ignore_index)
        return replica_share(ops.mean(keras.losses.dice(targets, probabilities, axis=(0, 1, 2))))

    def get_config(self) -> dict:
        return {**super().get_config(), "ignore_index": self.ignore_index}


@keras.saving.register_keras_serializable(package="animalseg")
class SparseTverskyLoss(keras.losses.Loss):
    """1 - Tversky index per class: ``alpha`` weights false positives, ``beta`` false negatives."""

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.5, ignore_index: int = 255, name: str = "sparse_tversky", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        for argument, value in (("alpha", alpha), ("beta", beta)):
            if not (is_number(value) and value >= 0):
                raise ValueError(f"{argument}={value!r}: must be a number >= 0")
        self.alpha, self.beta = float(alpha), float(beta)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        targets, probabilities = _dense(y_true, y_pred, self.ignore_index)
        # keras.losses.tversky multiplies its `alpha` with sum((1 - pred) * true), the false
        # negatives (its docstring says false positives), so the coefficients are passed swapped
        # to keep Salehi et al.'s meaning: alpha for false positives, beta for false negatives.
        tversky = keras.losses.tversky(targets, probabilities, alpha=self.beta, beta=self.alpha, axis=(0, 1, 2))
        return replica_share(ops.mean(tversky))

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "ignore_index": self.ignore_index}


@keras.saving.register_keras_serializable(package="animalseg")
class WeightedSum(keras.losses.Loss):
    """A weighted sum of losses on the same head (the terms of ``loss=focal_dice`` and the like)."""

    def __init__(self, losses: list, weights: list[float] | None = None, name: str = "weighted_sum", **kwargs):
        super().__init__(name=name, **kwargs)
        self.losses = [keras.losses.deserialize(loss) if isinstance(loss, dict) else loss for loss in losses]
        weights = [1.0] * len(self.losses) if weights is None else list(weights)
        if len(weights) != len(self.losses):
            raise ValueError(f"{len(self.losses)} losses but {len(weights)} weights")
        self.weights = [float(w) for w in weights]

    def call(self, y_true, y_pred):  # each part takes its own replica share (masking.py)
        return sum(w * loss(y_true, y_pred) for w, loss in zip(self.weights, self.losses, strict=True))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "losses": [keras.losses.serialize(loss) for loss in self.losses],
            "weights": self.weights,
        }
