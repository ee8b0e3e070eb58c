"""A learning rate for the pretrained encoder that is a fraction of the decoder's.

Fine-tuning an ImageNet encoder under a freshly initialised decoder works best when the encoder
moves more slowly than the decoder. Keras 3 optimizers have one rate for all variables and no
parameter groups (keras-team/keras#21741), and scaling the encoder's gradients instead would not
change an Adam step (Adam divides the scale out), so the rate itself is scaled per variable in
``update_step``, which every backend calls once per variable.
"""

from __future__ import annotations

import keras

from animalseg.compat.keras import variable_key


def scale_encoder_rate(
    optimizer: keras.optimizers.Optimizer, encoder: keras.layers.Layer, multiplier: float
) -> keras.optimizers.Optimizer:
    """Make ``optimizer`` step ``encoder``'s variables at ``multiplier`` x its (scheduled) rate.

    The step is wrapped on this instance, not through a subclass, so checkpoints keep naming
    the stock optimizer class and load anywhere (``keras.models.load_model`` with compile
    included); the multiplier is part of the run's config. Variables are recognised by the key
    Keras itself uses to find a variable's slots (``_var_key``: per-replica copies map to their
    distributed variable), so neither a rebuild over fewer variables (a frozen phase under a
    loss-scale wrapper) nor replication changes which variables are the encoder's. A multiplier
    of 1 returns the optimizer untouched. AdamW's decoupled weight decay keeps the full rate.
    """
    if not multiplier > 0:
        raise ValueError(f"encoder_lr_multiplier={multiplier}: must be a positive number")
    if multiplier == 1:
        return optimizer
    encoder_keys = frozenset(variable_key(optimizer, variable) for variable in encoder.variables)
    update_step = optimizer.update_step

    def encoder_scaled_update_step(gradient, variable, learning_rate):
        if variable_key(optimizer, variable) in encoder_keys:
            learning_rate = keras.ops.multiply(learning_rate, multiplier)
        return update_step(gradient, variable, learning_rate)

    optimizer.update_step = encoder_scaled_update_step
    return optimizer
