"""Sparse cross-entropy on logits with an ignore index and optional class weights.

Written here because Keras's ``SparseCategoricalCrossentropy`` takes no per-class weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from animalseg.losses.masking import masked_mean, sparse_log_probabilities
from animalseg.losses.weighting import ClassWeighted
from animalseg.numbers import is_number


@keras.saving.register_keras_serializable(package="animalseg")
class SparseCrossEntropy(ClassWeighted, keras.losses.Loss):
    """-log p_t per valid pixel, times its class weight when ``class_weights`` are given, averaged
    over the valid pixels.

    ``label_smoothing`` = e trains against (1 - e) x one-hot + e / C, the target Keras's
    ``CategoricalCrossentropy(label_smoothing=e)`` uses: per pixel (1 - e)(-log p_t) + e x the mean
    over the C classes of -log p_c, which keeps the logits from growing without bound on the
    confident pixels.
    """

    def __init__(
        self,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        name: str = "cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not (is_number(label_smoothing) and 0 <= label_smoothing < 1):
            raise ValueError(f"label_smoothing={label_smoothing!r}: must be a number in [0, 1) (0 turns it off)")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self._init_class_weights(class_weights)

    def call(self, y_true, y_pred):
        labels, valid, log_probs = sparse_log_probabilities(y_true, y_pred, self.ignore_index)
        loss = -ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)[..., 0]
        if self.label_smoothing:
            loss = (1.0 - self.label_smoothing) * loss - self.label_smoothing * ops.mean(log_probs, axis=-1)
        weights = self.pixel_weights(labels)
        return masked_mean(loss if weights is None else loss * weights, valid)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "ignore_index": self.ignore_index,
            "class_weights": self.class_weights,
            "label_smoothing": self.label_smoothing,
        }
