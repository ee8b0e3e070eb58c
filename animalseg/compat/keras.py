"""Keras internals: the optimizer's variable keys and EMA slots, the EfficientNet builder."""

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
