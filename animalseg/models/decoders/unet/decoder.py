"""One U-Net decoder for every encoder: up ×2, merge the skip at that stride, conv block."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from animalseg.models.blocks import BN_MOMENTUM, attention_gate, conv_block
from animalseg.models.encoders.base import level

# "transpose": a learned 2x2 stride-2 transposed conv to the block's width (the original U-Net);
# "nearest": nearest-neighbour upsampling, the width changes in the conv block (encoder U-Nets).
UPSAMPLING = ("transpose", "nearest")


def unet_decoder(
    pyramid: dict[str, keras.KerasTensor],
    filters: Sequence[int],
    attention: bool = False,
    upsampling: str = "transpose",
    dropout: float = 0.0,
    bn_momentum: float = BN_MOMENTUM,
) -> keras.KerasTensor:
    """The feature map at stride 1 from ``pyramid`` ({"P<k>": stride-2**k feature}).

    Starts from the deepest level and runs one block per entry of ``filters``, each doubling the
    resolution and concatenating the pyramid level found there (gated by an additive attention
    gate when ``attention``); levels without a feature (an encoder with no stride-1 output) get
    the block without a skip. So ``filters`` has one entry per halving of the deepest stride.
    """
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling={upsampling!r}: choose from {', '.join(UPSAMPLING)}")
    deepest = max(level(key) for key in pyramid)
    if len(filters) != deepest:
        raise ValueError(
            f"decoder filters {list(filters)}: need {deepest} blocks to go from stride {2**deepest} back to 1"
        )
    x = pyramid[f"P{deepest}"]
    for index, width in enumerate(filters):
        name = f"decoder{index + 1}"
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(width, 2, strides=2, name=f"{name}_upconv")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
        skip = pyramid.get(f"P{deepest - index - 1}")
        if skip is not None:
            if attention:
                skip = attention_gate(skip, x, width, f"{name}_attention", bn_momentum)
            x = layers.Concatenate(name=f"{name}_concat")([skip, x])
        x = conv_block(x, width, name, dropout, bn_momentum)
    return x
