"""Keras internals: the optimizer's variable keys, EMA slots and stateless update, the EfficientNet
builder."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import keras


def variable_key(optimizer: keras.optimizers.Optimizer, variable: keras.Variable) -> str:
    """The key Keras itself finds a variable's optimizer slots by (``_var_key``): a per-replica
    copy maps to its distributed variable, so a variable is recognised under any strategy and
    after a rebuild over fewer variables (a frozen phase under a loss-scale wrapper)."""
    return optimizer._var_key(variable)


def ema_pairs(optimizer: keras.optimizers.Optimizer) -> Iterator[tuple[keras.Variable, keras.Variable | None]]:
    """(trainable variable, its moving average or None) for an optimizer built with
    ``use_ema=True``: Keras keeps the averages in ``_model_variables_moving_average``, aligned
    with ``_trainable_variables``, and offers no public way to read them."""
    return zip(optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True)


def hold_ema_at_fit_end(optimizer: keras.optimizers.Optimizer) -> None:
    """Stop ``fit`` from copying the averages into the model when it ends
    (``finalize_variable_values``, called by Keras's trainer) while a callback owns the swap;
    ``release_ema_at_fit_end`` gives the class's own method back."""
    optimizer.finalize_variable_values = _keep_variable_values


def release_ema_at_fit_end(optimizer: keras.optimizers.Optimizer) -> None:
    del optimizer.finalize_variable_values


def _keep_variable_values(var_list: Any) -> None:
    """Stands in for ``Optimizer.finalize_variable_values``: the model keeps its values."""


def update_only(optimizer: keras.optimizers.Optimizer, training: list[keras.Variable]) -> None:
    """Let ``optimizer``, built over every variable that trains in any phase, update only
    ``training`` (the model's trainable variables now) on JAX too; call it before each ``fit``.

    TensorFlow's trainer calls ``apply``, which takes any subset; JAX's calls ``stateless_apply``,
    which insists on the full list it was built with. The others (a frozen encoder's) go in at
    their values now (taken here: JAX's ``fit`` empties the variables while it runs), constant
    through the phase, with zero gradients, and their results are dropped: a zero gradient leaves
    them, and the slots of Adam, SGD and their kin, as TensorFlow's subset update does, and their
    moving averages follow the frozen values.
    """
    optimizer.__dict__.pop("stateless_apply", None)  # the class's own for a full update
    built = optimizer._trainable_variables
    position = {optimizer._var_key(v): i for i, v in enumerate(training)}
    if keras.backend.backend() != "jax" or len(position) == len(built):
        return
    slots = [position.get(optimizer._var_key(v)) for v in built]
    held = {j: v.value for j, (v, i) in enumerate(zip(built, slots, strict=True)) if i is None}
    full_update = optimizer.stateless_apply

    def stateless_apply(optimizer_variables: list, grads: list, trainable_variables: list) -> tuple[list, list]:
        values = [held[j] if i is None else trainable_variables[i] for j, i in enumerate(slots)]
        gradients = [keras.ops.zeros_like(held[j]) if i is None else grads[i] for j, i in enumerate(slots)]
        updated, optimizer_variables = full_update(optimizer_variables, gradients, values)
        ordered = [None] * len(trainable_variables)
        for value, i in zip(updated, slots, strict=True):
            if i is not None:
                ordered[i] = value
        return ordered, optimizer_variables

    optimizer.stateless_apply = stateless_apply


def efficientnet_builder() -> tuple[ModuleType, ModuleType]:
    """Keras's EfficientNet module (``block``, ``DEFAULT_BLOCKS_ARGS`` and the initializers) and
    ``imagenet_utils`` (``correct_pad``): the Lite variants are built from the same blocks, which
    ``keras.applications`` does not export."""
    from keras.src.applications import efficientnet, imagenet_utils

    return efficientnet, imagenet_utils


def resize_bilinear(images: Any, height: Any, width: Any) -> Any:
    """``images`` (N, H, W, C) resized bilinearly to ``height`` x ``width``, which may be symbolic.

    ``keras.ops.image.resize`` compares the size with 0 in Python, which a graph traced without
    autograph (an export's serving function) cannot do with a size computed from the input's
    shape; the backend's own resize, which it calls next, takes such sizes (TensorFlow), and under
    JAX the shapes are concrete when traced."""
    from keras.src.backend import image as backend_image

    return backend_image.resize(images, (height, width), interpolation="bilinear", data_format="channels_last")
