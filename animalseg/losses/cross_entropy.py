"""Sparse cross-entropy on logits with an ignore index and optional class weights.

Written here because Keras's ``SparseCategoricalCrossentropy`` takes no per-class weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from animalseg.losses.masking import masked_mean, sparse_log_probabilities
from animalseg.losses.weighting import ClassWeighted


@keras.saving.register_keras_serializable(package="animalseg")
class SparseCrossEntropy(ClassWeighted, keras.losses.Loss):
    """-log p_t per valid pixel, times its class weight when ``class_weights`` are given, averaged
    over the valid pixels."""

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        name: str = "cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self._init_class_weights(class_weights)

    def call(self, y_true, y_pred):
        labels, valid, log_probs = sparse_log_probabilities(y_true, y_pred, self.ignore_index)
        loss = -ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)[..., 0]
        weights = self.pixel_weights(labels)
        return masked_mean(loss if weights is None else loss * weights, valid)

    def get_config(self) -> dict:
        return {**super().get_config(), "ignore_index": self.ignore_index, "class_weights": self.class_weights}
