"""What every encoder hands its decoder: a feature pyramid keyed by stride, behind one layer.

An encoder is a functional model from [0, 255] RGB images to ``{"P<k>": feature at stride 2**k}``
(keras-hub's ``pyramid_outputs`` convention), so decoders never need to know which backbone they
sit on. The ``Encoder`` layer around it is what a model freezes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import keras
from keras import layers

from animalseg.errors import ConfigError


class EncoderSpec(Protocol):
    """One row of the encoder table."""

    def build(self, name: str, **options: Any) -> keras.Model:
        """The pyramid model of encoder ``name`` (options: weights, widths... as the row takes)."""
        ...


def pyramid_model(inputs: keras.KerasTensor, features: dict[int, keras.KerasTensor], name: str) -> keras.Model:
    """A functional model whose outputs are ``features`` (stride → tensor) keyed ``P<log2 stride>``."""
    outputs = {f"P{stride.bit_length() - 1}": feature for stride, feature in features.items()}
    return keras.Model(inputs, outputs, name=name)


def level(key: str) -> int:
    """The k of a pyramid key ``P<k>`` (stride 2**k)."""
    return int(key[1:])


class Encoder(layers.Layer):
    """Runs a pyramid model; once frozen (``trainable=False``) it runs entirely in inference mode.

    Keras runs a non-trainable BatchNormalization in inference mode but still applies Dropout
    (EfficientNet's stochastic depth) when called with ``training=True``, so a frozen encoder
    would see noise in its features while its weights stay fixed. This layer passes
    ``training=False`` to everything inside while frozen.
    """

    def __init__(self, pyramid: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.pyramid = pyramid

    @property
    def layers(self) -> list[keras.layers.Layer]:
        """The pyramid model, so code that walks nested models' ``layers`` (synchronised
        BatchNorm) reaches the encoder's layers as it would through a keras.Model."""
        return [self.pyramid]

    @property
    def output_stride(self) -> int:
        """The stride of the deepest pyramid level: input sizes must be divisible by it."""
        return 2 ** max(level(key) for key in self.pyramid.output)

    def call(self, inputs, training=None):
        return self.pyramid(inputs, training=training if self.trainable else False)


def existing_file(path: str) -> str:
    """``path`` (``~`` expanded) if it is a file, else the config error for model.encoder_weights."""
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"model.encoder_weights={path}: file not found")
    return str(Path(path).expanduser())
