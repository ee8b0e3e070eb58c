"""Building blocks shared by the U-Net decoder and the conv encoder (Keras functional API)."""

from __future__ import annotations

from collections.abc import Iterator

import keras
from keras import layers

from animalseg.compat.keras import resize_bilinear

# Keras's default BatchNorm momentum (0.99) needs hundreds of steps before the moving statistics
# used at evaluation are right; segmentation sets have tens of steps per epoch, so 0.9 (PyTorch's).
BN_MOMENTUM = 0.9


def batchnorm_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.BatchNormalization]:
    """Every BatchNormalization inside ``layer``, nested models (encoders) included."""
    for child in getattr(layer, "layers", []):
        if isinstance(child, keras.layers.BatchNormalization):
            yield child
        else:
            yield from batchnorm_layers(child)


@keras.saving.register_keras_serializable(package="animalseg")
class BilinearUpsampling(layers.Layer):
    """Bilinear upsampling by an integer ``factor`` for inputs of any size, exports included
    (Keras's ``UpSampling2D(interpolation="bilinear")`` fails to trace on a fully dynamic input)."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        shape = keras.ops.shape(inputs)
        return resize_bilinear(inputs, shape[1] * self.factor, shape[2] * self.factor)

    def compute_output_shape(self, input_shape):
        height, width = (None if side is None else side * self.factor for side in input_shape[1:3])
        return (input_shape[0], height, width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def conv_block(
    x: keras.KerasTensor, filters: int, name: str, dropout: float = 0.0, bn_momentum: float = BN_MOMENTUM
) -> keras.KerasTensor:
    """Two [conv3x3, BatchNorm, ReLU] layers, with optional dropout between them."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
        if i == 1 and dropout > 0:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def attention_gate(
    skip: keras.KerasTensor,
    gate: keras.KerasTensor,
    inter_filters: int,
    name: str,
    bn_momentum: float = BN_MOMENTUM,
) -> keras.KerasTensor:
    """Additive attention gate (Oktay et al. 2018) on a skip connection.

    ``gate`` is the decoder feature at the skip's resolution: 1x1 convs of both, sum, ReLU, 1x1
    conv to one channel, sigmoid → coefficients in [0, 1] (layer ``<name>_coefficients``) that
    multiply the skip.
    """
    theta = layers.Conv2D(inter_filters, 1, use_bias=False, name=f"{name}_theta")(skip)
    theta = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_theta_bn")(theta)
    phi = layers.Conv2D(inter_filters, 1, use_bias=False, name=f"{name}_phi")(gate)
    phi = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_phi_bn")(phi)
    joint = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    psi = layers.Conv2D(1, 1, name=f"{name}_psi")(joint)
    coefficients = layers.Activation("sigmoid", name=f"{name}_coefficients")(psi)
    return layers.Multiply(name=f"{name}_apply")([skip, coefficients])
