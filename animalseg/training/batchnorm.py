"""BatchNorm statistics re-estimated for the weights a model holds now (the ``update_bn`` of
stochastic weight averaging).

Keras's weight EMA averages the trainable variables only; the BatchNorm moving mean and variance
are gathered during training under the raw training weights, so the EMA weights would be scored
with statistics of other features than their own. ``recompute_batchnorm`` replaces them with the
statistics the current weights produce on training batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from animalseg.models.blocks import batchnorm_layers


def trained_batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The BatchNorm layers whose statistics training updates: the trainable ones. A
    non-trainable one (a frozen encoder's, ``model.freeze_encoder_bn``) runs in inference mode in
    training too, so the model learnt with the statistics it holds."""
    unique = {id(layer): layer for layer in batchnorm_layers(model) if layer.trainable}
    return list(unique.values())


def recompute_batchnorm(model: keras.Model, batches: Iterable) -> int:
    """Set every trained BatchNorm layer's moving mean and variance to the average, over
    ``batches`` (image batches, or ``(images, targets)`` pairs as the training pipeline yields),
    of the batch mean and variance of its inputs, each batch weighted by its number of images.

    The pass runs the BatchNorm layers in training mode (normalising by the batch's own
    statistics, so every layer sees the features it saw in training) and everything else in
    inference mode (no dropout or stochastic depth, which inference does not have either). The
    variances are the biased batch variances, as Keras's own moving variance averages. No other
    variable changes; an error part way leaves the statistics as they were. Returns the number of
    images seen (0: nothing changed)."""
    layers = trained_batchnorm_layers(model)
    if not layers:
        return 0
    before = [(_numpy(layer.moving_mean), _numpy(layer.moving_variance)) for layer in layers]
    means = [np.zeros(m.shape, np.float64) for m, _ in before]
    variances = [np.zeros(v.shape, np.float64) for _, v in before]
    seen = 0
    try:
        with _batch_statistics(layers):
            forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
            for batch in batches:
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                count = int(keras.ops.shape(images)[0])
                forward(images)
                for layer, mean, variance in zip(layers, means, variances, strict=True):
                    mean += count * _numpy(layer.moving_mean)  # this batch's: momentum is 0
                    variance += count * _numpy(layer.moving_variance)
                seen += count
    except BaseException:
        _assign(layers, [m for m, _ in before], [v for _, v in before])
        raise
    if seen:
        _assign(layers, [m / seen for m in means], [v / seen for v in variances])
    else:
        _assign(layers, [m for m, _ in before], [v for _, v in before])
    return seen


@contextlib.contextmanager
def _batch_statistics(layers: list[keras.layers.BatchNormalization]) -> Iterator[None]:
    """While inside: ``layers`` run in training mode whatever the model is called with, and their
    moving statistics are the last batch's (momentum 0)."""
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.call = _in_training_mode(layer.call)
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            del layer.call  # the class's own method again
            layer.momentum = momentum


def _in_training_mode(call):
    def call_in_training_mode(inputs, training=None, mask=None):
        return call(inputs, training=True, mask=mask)

    return call_in_training_mode


def _assign(layers: list, means: list[np.ndarray], variances: list[np.ndarray]) -> None:
    for layer, mean, variance in zip(layers, means, variances, strict=True):
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))


def _numpy(variable) -> np.ndarray:
    return keras.ops.convert_to_numpy(variable).astype(np.float64)
