"""A learning rate for the pretrained encoder that is a fraction of the decoder's.

Fine-tuning an ImageNet encoder under a freshly initialised decoder works best when the encoder
moves more slowly than the decoder. Keras 3 optimizers have one rate for all variables and no
parameter groups (keras-team/keras#21741), and scaling the encoder's gradients instead would not
change an Adam step (Adam divides the scale out), so the rate itself is scaled per variable in
``update_step``, which every backend calls once per variable.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

_SCALED_CLASSES: dict[type, type] = {}


class _EncoderRate:
    """Mixin for a Keras optimizer class: the encoder's variables step at
    ``encoder_lr_multiplier`` x the (scheduled) learning rate."""

    encoder_lr_multiplier: float
    _encoder_variable_ids: frozenset[int]
    _encoder_indices: frozenset[int]

    def build(self, variables: Sequence[keras.Variable]) -> None:
        super().build(variables)
        self._encoder_indices = frozenset(
            index for index, variable in enumerate(variables) if id(variable) in self._encoder_variable_ids
        )

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._encoder_indices:
            learning_rate = keras.ops.multiply(learning_rate, self.encoder_lr_multiplier)
        return super().update_step(gradient, variable, learning_rate)


def encoder_rate_class(optimizer_class: type[keras.optimizers.Optimizer]) -> type[keras.optimizers.Optimizer]:
    """``optimizer_class`` with the encoder's rate scaled (one subclass per optimizer class)."""
    if optimizer_class not in _SCALED_CLASSES:
        name = f"EncoderRate{optimizer_class.__name__}"
        _SCALED_CLASSES[optimizer_class] = type(name, (_EncoderRate, optimizer_class), {})
    return _SCALED_CLASSES[optimizer_class]


def scale_encoder_rate(
    optimizer: keras.optimizers.Optimizer, encoder: keras.layers.Layer, multiplier: float
) -> keras.optimizers.Optimizer:
    """Make ``optimizer`` (not yet built) step ``encoder``'s variables at ``multiplier`` x its rate.

    A multiplier of 1 returns the optimizer as it is."""
    if not multiplier > 0:
        raise ValueError(f"encoder_lr_multiplier={multiplier}: must be a positive number")
    if multiplier == 1:
        return optimizer
    if optimizer.built:
        raise ValueError("scale_encoder_rate needs an optimizer that is not built yet")
    optimizer.__class__ = encoder_rate_class(type(optimizer))
    optimizer.encoder_lr_multiplier = float(multiplier)
    optimizer._encoder_variable_ids = frozenset(id(variable) for variable in encoder.variables)
    return optimizer
