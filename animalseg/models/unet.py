"""U-Net, Attention U-Net (the report's first two architectures) and the U-Net on an ImageNet
encoder, each with a choice of decoder (``decoder``: the U-Net's, U-Net++, FPN or DeepLabV3+, see
``decoders/``) on an encoder from the table in ``encoders/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from animalseg.models.base import SegmentationModel
from animalseg.models.blocks import BN_MOMENTUM
from animalseg.models.decoders import build_decoder
from animalseg.models.encoders import build_encoder


@keras.saving.register_keras_serializable(package="animalseg")
class UNet(SegmentationModel):
    """A U-Net with ``depth`` down and up blocks of 2x [conv3x3, BN, ReLU] (``output_stride``
    2**depth); ``attention`` gates every skip connection."""

    def __init__(
        self,
        num_classes: int,
        base_filters: int = 64,
        depth: int = 4,
        dropout: float = 0.0,
        bn_momentum: float = BN_MOMENTUM,
        attention: bool = False,
        class_names: Sequence[str] | None = None,
        class_colors: Sequence[Sequence[int]] | None = None,
        freeze_encoder_epochs: int = 0,
        freeze_encoder_bn: bool = False,
        decoder: str = "unet",
        decoder_channels: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        name: str | None = None,
    ):
        self.base_filters, self.depth = int(base_filters), int(depth)
        self.dropout, self.bn_momentum, self.attention = float(dropout), float(bn_momentum), bool(attention)
        self.decoder, self.decoder_channels = str(decoder), int(decoder_channels)
        self.aspp_rates = [int(r) for r in aspp_rates]
        encoder = build_encoder(
            "unet", base_filters=self.base_filters, depth=self.depth, dropout=self.dropout, bn_momentum=self.bn_momentum
        )
        decode = build_decoder(
            self.decoder,
            [self.base_filters * 2**level for level in reversed(range(self.depth))],
            "transpose",
            self.decoder_channels,
            self.aspp_rates,
            self.dropout,
            self.bn_momentum,
            attention=self.attention,
        )
        default_name = "attention_unet" if self.attention else "unet"
        super().__init__(
            encoder,
            decode,
            num_classes,
            class_names,
            class_colors,
            freeze_encoder_epochs=freeze_encoder_epochs,
            name=name or (default_name if self.decoder == "unet" else f"{self.decoder}_scratch"),
            freeze_encoder_bn=freeze_encoder_bn,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "base_filters": self.base_filters,
            "depth": self.depth,
            "dropout": self.dropout,
            "bn_momentum": self.bn_momentum,
            "attention": self.attention,
            "decoder": self.decoder,
            "decoder_channels": self.decoder_channels,
            "aspp_rates": self.aspp_rates,
        }


@keras.saving.register_keras_serializable(package="animalseg")
class AttentionUNet(UNet):
    """The Attention U-Net: the U-Net with an additive attention gate on every skip."""

    def __init__(self, num_classes: int, **kwargs: Any):
        super().__init__(num_classes, **{**kwargs, "attention": True})


@keras.saving.register_keras_serializable(package="animalseg")
class EncoderUNet(SegmentationModel):
    """A U-Net decoder on an ImageNet encoder (``output_stride`` 32).

    Skips at strides 16, 8, 4 and 2 are merged on the way up and a last block restores the input
    resolution. ``encoder_weights``: ``imagenet``, a local weights file, or ``None``; a model
    loaded from a ``.keras`` file is rebuilt without them, its own weights replace them anyway.
    ``encoder_pyramid``: which encoder layers feed the decoder, ``expanded`` (for EfficientNet the
    expansion activations and the 1280-wide head, as the report's U-Net) or ``blocks`` (the
    stages' outputs: a third fewer FLOPs in the decoder).
    """

    def __init__(
        self,
        num_classes: int,
        encoder: str = "EfficientNetB3",
        encoder_weights: str | None = "imagenet",
        decoder_filters: Sequence[int] = (256, 128, 64, 32, 16),
        dropout: float = 0.0,
        bn_momentum: float = BN_MOMENTUM,
        class_names: Sequence[str] | None = None,
        class_colors: Sequence[Sequence[int]] | None = None,
        freeze_encoder_epochs: int = 0,
        freeze_encoder_bn: bool = False,
        encoder_pyramid: str = "expanded",
        decoder: str = "unet",
        decoder_channels: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        name: str | None = None,
    ):
        self.encoder_name, self.encoder_weights = str(encoder), encoder_weights
        self.encoder_pyramid = str(encoder_pyramid)
        self.decoder_filters = [int(f) for f in decoder_filters]
        self.dropout, self.bn_momentum = float(dropout), float(bn_momentum)
        self.decoder, self.decoder_channels = str(decoder), int(decoder_channels)
        self.aspp_rates = [int(r) for r in aspp_rates]
        decode = build_decoder(
            self.decoder,
            self.decoder_filters,
            "nearest",
            self.decoder_channels,
            self.aspp_rates,
            self.dropout,
            self.bn_momentum,
        )
        super().__init__(
            build_encoder(
                self.encoder_name, weights=encoder_weights, bn_momentum=self.bn_momentum, pyramid=self.encoder_pyramid
            ),
            decode,
            num_classes,
            class_names,
            class_colors,
            freeze_encoder_epochs=freeze_encoder_epochs,
            name=name or f"{self.decoder}_{self.encoder_name.lower()}",
            freeze_encoder_bn=freeze_encoder_bn,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "encoder": self.encoder_name,
            "encoder_weights": self.encoder_weights,
            "encoder_pyramid": self.encoder_pyramid,
            "decoder_filters": self.decoder_filters,
            "dropout": self.dropout,
            "bn_momentum": self.bn_momentum,
            "decoder": self.decoder,
            "decoder_channels": self.decoder_channels,
            "aspp_rates": self.aspp_rates,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EncoderUNet:
        model = super().from_config({**config, "encoder_weights": None})  # the checkpoint holds the weights
        model.encoder_weights = config["encoder_weights"]
        return model
