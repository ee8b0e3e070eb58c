"""The one table of encoders. A decoder reads only the pyramid an encoder returns, so a new
encoder is one table row."""

from __future__ import annotations

from functools import partial
from typing import Any

import keras

from animalseg.errors import ConfigError
from animalseg.models.encoders.base import Encoder, EncoderSpec
from animalseg.models.encoders.efficientnet_lite import LITE_VARIANTS, build_efficientnet_lite, load_lite_weights
from animalseg.models.encoders.imagenet import ImageNetEncoderSpec
from animalseg.models.encoders.unet import ConvEncoderSpec

_EFFICIENTNET = (
    "block2a_expand_activation",
    "block3a_expand_activation",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)
# The stages' outputs (16-40 channels at strides 2-8, then 112 and 320 for Lite0/B0) instead of
# the 6x-wide expansions and the 1280-wide head: about a third fewer decoder FLOPs.
_EFFICIENTNET_BLOCKS = ("last:block1", "last:block2", "last:block3", "last:block5", "last:block7")
_EFFICIENTNET_V2 = (
    "last:block1",
    "last:block2",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)

ENCODERS: dict[str, EncoderSpec] = {
    "unet": ConvEncoderSpec(),
    **{
        f"EfficientNetB{i}": ImageNetEncoderSpec(
            getattr(keras.applications, f"EfficientNetB{i}"),
            _EFFICIENTNET,
            f"efficientnetb{i}_notop.h5",
            rescale_fix=True,
            block_features=_EFFICIENTNET_BLOCKS,
        )
        for i in range(8)
    },
    **{
        f"EfficientNetV2{v}": ImageNetEncoderSpec(
            partial(getattr(keras.applications, f"EfficientNetV2{v}"), include_preprocessing=True),
            _EFFICIENTNET_V2,
            f"efficientnetv2-{v.lower()}_notop.h5",
        )
        for v in ("B0", "B1", "B2", "B3", "S", "M", "L")
    },
    "ResNet50": ImageNetEncoderSpec(
        keras.applications.ResNet50,
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        preprocessing="caffe",
    ),
    **{
        name: ImageNetEncoderSpec(
            partial(build_efficientnet_lite, name),
            _EFFICIENTNET,
            weights_loader=partial(load_lite_weights, name),
            block_features=_EFFICIENTNET_BLOCKS,
        )
        for name in LITE_VARIANTS
    },
}


def build_encoder(name: str, **options: Any) -> Encoder:
    """The ``Encoder`` layer of table row ``name``, built with that row's ``options``."""
    if name not in ENCODERS:
        raise ConfigError(f"model.encoder={name}: unknown encoder; choose from {', '.join(sorted(ENCODERS))}")
    return Encoder(ENCODERS[name].build(name, **options), name="encoder")
