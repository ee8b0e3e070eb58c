"""Class weighting as a capability a loss declares: ``ClassWeighted``.

The objective hands ``loss.class_weights`` to every term whose class inherits ``ClassWeighted``,
and ``ClassWeightFade`` fades the weights of exactly those terms: a new loss that weights pixels
by class inherits it and multiplies by ``pixel_weights(labels)``; nothing else is told about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from animalseg.numbers import is_number


class ClassWeighted:
    """A loss whose pixels are weighted by their class: ``class_weights`` (one per class, or None)
    raised to ``class_weight_exponent`` (a variable: 1 as given, 0 every class 1), which
    ``ClassWeightFade`` lowers over the first epochs."""

    class_weights: list[float] | None
    class_weight_exponent: keras.Variable | None

    def _init_class_weights(self, class_weights: Sequence[float] | None) -> None:
        if class_weights is not None and not (
            isinstance(class_weights, Sequence)
            and class_weights
            and all(is_number(w) and w >= 0 for w in class_weights)
        ):
            raise ValueError(
                f"class_weights={class_weights!r}: must be null or one number >= 0 per class "
                "(0: a class absent from the training split)"
            )
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        # a variable, not a float: the compiled train step reads it at every step
        self.class_weight_exponent = (
            None if class_weights is None else keras.Variable(1.0, trainable=False, name="class_weight_exponent")
        )

    def pixel_weights(self, labels):
        """Each pixel's class weight (``labels`` valid class indices), or None when unweighted."""
        if self.class_weights is None:
            return None
        weights = ops.power(ops.convert_to_tensor(self.class_weights, dtype="float32"), self.class_weight_exponent)
        return ops.take(weights, labels)
