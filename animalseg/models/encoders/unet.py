"""The plain U-Net's down path as an encoder: ``depth`` conv blocks with max pooling, then the
bottleneck block; skips at strides 1 to 2**(depth-1) and the bottleneck at 2**depth."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from animalseg.errors import ConfigError
from animalseg.models.blocks import BN_MOMENTUM, conv_block
from animalseg.models.encoders.base import pyramid_model


@dataclass(frozen=True)
class ConvEncoderSpec:
    """The table row of the randomly initialised conv encoder (no pretrained weights exist)."""

    def build(
        self,
        name: str,
        base_filters: int = 64,
        depth: int = 4,
        dropout: float = 0.0,
        bn_momentum: float = BN_MOMENTUM,
        weights: str | None = None,
    ) -> keras.Model:
        """Widths ``base_filters * 2**level``; the bottleneck doubles the last one."""
        if weights is not None:
            raise ConfigError(f"model.encoder_weights={weights}: the {name} encoder has no pretrained weights")
        inputs = keras.Input((None, None, 3), name="image")
        x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
        features = {}
        for index in range(depth):
            x = conv_block(x, base_filters * 2**index, f"down{index + 1}", dropout, bn_momentum)
            features[2**index] = x
            x = layers.MaxPooling2D(2, name=f"pool{index + 1}")(x)
        features[2**depth] = conv_block(x, base_filters * 2**depth, "bottleneck", dropout, bn_momentum)
        return pyramid_model(inputs, features, name=f"{name}_encoder")
