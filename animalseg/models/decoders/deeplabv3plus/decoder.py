"""DeepLabV3+ (Chen et al. 2018): atrous spatial pyramid pooling, then the stride-4 skip.

ASPP runs on the pyramid's deepest level: a 1x1 conv, one 3x3 conv per dilation rate in
``aspp_rates`` and image-level pooling, concatenated and projected to ``channels``. The result is
upsampled to stride 4, concatenated with the stride-4 level reduced to 48 channels, refined by
two 3x3 convs and upsampled bilinearly to the input resolution. The encoders here keep their
strides (no dilated last stage), so ASPP sees stride 32 features (stride 16 for a scratch
U-Net of depth 4): the rates are in pixels of that level, and the defaults (6, 12, 18) are the
paper's for stride 16.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from animalseg.models.blocks import BN_MOMENTUM, BilinearUpsampling
from animalseg.models.encoders.base import level

LOW_LEVEL = 2  # the stride-4 skip
LOW_LEVEL_CHANNELS = 48


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, kernel: int, name: str, bn_momentum: float, rate: int = 1
) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="animalseg")
class ImagePooling(layers.Layer):
    """Image-level features of ASPP: the global mean, projected, broadcast back over H x W (a
    Keras layer of its own since the input size is known only when the model runs)."""

    def __init__(self, filters: int, bn_momentum: float = BN_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.bn_momentum = int(filters), float(bn_momentum)
        self.conv = layers.Conv2D(self.filters, 1, use_bias=False, name="conv")
        self.bn = layers.BatchNormalization(momentum=self.bn_momentum, name="bn")

    @property
    def layers(self) -> list[layers.Layer]:
        """Its conv and BatchNorm, so code that walks nested ``layers`` (synchronised BatchNorm)
        reaches them as it would inside a keras.Model."""
        return [self.conv, self.bn]

    def build(self, input_shape):
        self.conv.build((*input_shape[:-2], 1, input_shape[-1]))
        self.bn.build((*input_shape[:-2], 1, self.filters))

    def call(self, inputs, training=None):
        pooled = keras.ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = keras.ops.relu(self.bn(self.conv(pooled), training=training))
        shape = keras.ops.shape(inputs)
        return keras.ops.broadcast_to(pooled, (shape[0], shape[1], shape[2], self.filters))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "bn_momentum": self.bn_momentum}


def deeplabv3plus_decoder(
    pyramid: dict[str, keras.KerasTensor],
    channels: int = 256,
    aspp_rates: Sequence[int] = (6, 12, 18),
    dropout: float = 0.1,
    bn_momentum: float = BN_MOMENTUM,
) -> keras.KerasTensor:
    """The feature map at stride 1 from ``pyramid`` ({"P<k>": stride-2**k feature})."""
    if f"P{LOW_LEVEL}" not in pyramid:
        raise ValueError(f"the DeepLabV3+ decoder needs a stride-4 level (P2); the pyramid has {sorted(pyramid)}")
    deepest = max(level(key) for key in pyramid)
    x = pyramid[f"P{deepest}"]
    branches = [_conv_bn_relu(x, channels, 1, "aspp_1x1", bn_momentum)]
    branches += [_conv_bn_relu(x, channels, 3, f"aspp_rate{r}", bn_momentum, int(r)) for r in aspp_rates]
    branches.append(ImagePooling(channels, bn_momentum, name="aspp_pooling")(x))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, channels, 1, "aspp_project", bn_momentum)
    if dropout > 0:
        x = layers.Dropout(dropout, name="aspp_dropout")(x)
    if deepest > LOW_LEVEL:
        x = BilinearUpsampling(2 ** (deepest - LOW_LEVEL), name="aspp_to_stride4")(x)
    low = _conv_bn_relu(pyramid[f"P{LOW_LEVEL}"], LOW_LEVEL_CHANNELS, 1, "low_level", bn_momentum)
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn_relu(x, channels, 3, "decoder_refine1", bn_momentum)
    x = _conv_bn_relu(x, channels, 3, "decoder_refine2", bn_momentum)
    return BilinearUpsampling(2**LOW_LEVEL, name="decoder_to_input")(x)
