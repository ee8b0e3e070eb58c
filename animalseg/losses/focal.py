"""Sparse multi-class focal loss with an ignore index.

Written here because Keras has no sparse focal loss that skips an ignore class
(``CategoricalFocalCrossentropy`` wants one-hot targets and has no ignore).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from animalseg.losses.masking import masked_mean, sparse_log_probabilities
from animalseg.losses.weighting import ClassWeighted
from animalseg.numbers import is_number


@keras.saving.register_keras_serializable(package="animalseg")
class SparseFocalLoss(ClassWeighted, keras.losses.Loss):
    """FL = -alpha_t (1 - p_t)^gamma log p_t on logits, averaged over non-ignored pixels.

    ``alpha`` is the class balance:
    - a scalar a in [0, 1] weights every foreground class (index >= 1) by a and background
      (index 0) by 1 - a, so 0.75 favours the animals over the background and 0.5 is neutral up
      to a factor 0.5 (a scalar that multiplied every pixel would only rescale the loss);
    - a list gives one weight per class;
    - ``None`` weights every class by 1 (with ``gamma=0`` this is plain cross-entropy).

    ``class_weights`` (``ClassWeighted``) multiply on top of alpha; the mean is over valid pixels.
    """

    def __init__(
        self,
        alpha: float | Sequence[float] | None = None,
        gamma: float = 2.0,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        name: str = "sparse_focal",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not _valid_alpha(alpha):
            raise ValueError(
                f"alpha={alpha!r}: must be null, a number in [0, 1] or a list of per-class numbers in [0, 1]"
            )
        if not (is_number(gamma) and gamma >= 0):
            raise ValueError(f"gamma={gamma!r}: must be a number >= 0")
        self.alpha = [float(a) for a in alpha] if isinstance(alpha, Sequence) else alpha
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self._init_class_weights(class_weights)

    def _alpha_per_class(self, num_classes: int) -> keras.KerasTensor | None:
        if self.alpha is None:
            return None
        if isinstance(self.alpha, list):
            if len(self.alpha) != num_classes:
                raise ValueError(f"alpha has {len(self.alpha)} values for {num_classes} classes")
            return ops.convert_to_tensor(self.alpha, dtype="float32")
        return ops.convert_to_tensor([1.0 - self.alpha] + [float(self.alpha)] * (num_classes - 1), dtype="float32")

    def call(self, y_true, y_pred):
        labels, valid, log_probs = sparse_log_probabilities(y_true, y_pred, self.ignore_index)
        loss = -ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)[..., 0]
        if self.gamma:
            loss = loss * ops.exp(self.gamma * _log_rest(log_probs, labels))
        alpha = self._alpha_per_class(y_pred.shape[-1])
        if alpha is not None:
            loss = loss * ops.take(alpha, labels)
        weights = self.pixel_weights(labels)
        if weights is not None:
            loss = loss * weights
        return masked_mean(loss, valid)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "ignore_index": self.ignore_index,
            "class_weights": self.class_weights,
        }


def _valid_alpha(alpha: object) -> bool:
    def unit(value: object) -> bool:
        return is_number(value) and 0 <= value <= 1

    if alpha is None:
        return True
    if isinstance(alpha, Sequence) and not isinstance(alpha, str):
        return len(alpha) > 0 and all(unit(a) for a in alpha)
    return unit(alpha)


_EXCLUDED = -1e30  # a finite log-probability for "not summed" (-inf would make a NaN gradient)


def _log_rest(log_probs, labels):
    """log(1 - p_t) as the log-probability of all the other classes.

    ``1 - exp(log_pt)`` is exactly 0 once p_t rounds to 1 (logit margin >= ~17 in float32), where
    the slope of ``(1 - p_t)^gamma`` is infinite for gamma < 1 and its gradient NaN; this form
    stays exact and finite there (about -margin).
    """
    others = ops.not_equal(ops.arange(ops.shape(log_probs)[-1], dtype="int32"), ops.expand_dims(labels, -1))
    return ops.logsumexp(ops.where(others, log_probs, _EXCLUDED), axis=-1)
