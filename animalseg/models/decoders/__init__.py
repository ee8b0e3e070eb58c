"""The decoders: each turns an encoder's ``P<k>`` pyramid into a feature map at stride 1, where
the heads classify each pixel. ``model.decoder`` picks one for any encoder of the table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import keras

from animalseg.models.decoders.deeplabv3plus import deeplabv3plus_decoder
from animalseg.models.decoders.fpn import fpn_decoder
from animalseg.models.decoders.unet import unet_decoder
from animalseg.models.decoders.unetplusplus import unetplusplus_decoder

__all__ = ["DECODERS", "build_decoder"]

DECODERS = ("unet", "unetplusplus", "fpn", "deeplabv3plus")  # model.decoder


def build_decoder(
    name: str,
    unet_filters: Sequence[int],
    upsampling: str,
    channels: int,
    aspp_rates: Sequence[int],
    dropout: float,
    bn_momentum: float,
    attention: bool = False,
) -> Callable[[dict[str, keras.KerasTensor]], keras.KerasTensor]:
    """The decoder ``name`` with the settings it takes: the U-Net's (and U-Net++'s) block widths
    and upsampling, the U-Net's gates; FPN's and DeepLabV3+'s ``channels``; DeepLabV3+'s ASPP rates."""
    if name in ("unet", "unetplusplus"):
        blocks = {
            "filters": list(unet_filters),
            "upsampling": upsampling,
            "dropout": dropout,
            "bn_momentum": bn_momentum,
        }
        if name == "unet":
            return partial(unet_decoder, attention=attention, **blocks)
        if not attention:
            return partial(unetplusplus_decoder, **blocks)
    if attention:
        raise ValueError(f"decoder={name!r}: attention gates are the U-Net decoder's; use decoder=unet")
    if name == "fpn":
        return partial(
            fpn_decoder,
            pyramid_channels=channels,
            segmentation_channels=max(1, channels // 2),
            dropout=dropout,
            bn_momentum=bn_momentum,
        )
    if name == "deeplabv3plus":
        return partial(
            deeplabv3plus_decoder,
            channels=channels,
            aspp_rates=list(aspp_rates),
            dropout=dropout,
            bn_momentum=bn_momentum,
        )
    raise ValueError(f"decoder={name!r}: choose from {', '.join(DECODERS)}")
