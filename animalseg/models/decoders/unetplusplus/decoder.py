"""U-Net++: the U-Net's skips replaced by a grid of nested conv blocks.

Node ``X[l, j]`` sits at pyramid level ``l`` (stride ``2**l``) after ``j`` steps of nesting:
``X[l, 0]`` is the encoder's feature, and ``X[l, j]`` is a conv block over every earlier node of
its level concatenated with the upsampled ``X[l + 1, j - 1]`` from the level below. The finest
level's last node is the decoder's output, brought to stride 1 by skip-less blocks when the
encoder has no stride-1 feature (as the U-Net decoder does). Each level's blocks have the width
the U-Net decoder gives that level (``filters``, deepest first), so ``model.decoder=unetplusplus``
takes the same settings as ``unet``; it adds the report's "more skip connections" at the cost of
more convolutions at the fine levels. Deep supervision (a head on every ``X[finest, j]``) is not
offered: the models have one semantic head.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from animalseg.models.blocks import BN_MOMENTUM, conv_block
from animalseg.models.decoders.unet.decoder import UPSAMPLING
from animalseg.models.encoders.base import level


def _up(x: keras.KerasTensor, factor: int, width: int, upsampling: str, name: str) -> keras.KerasTensor:
    if upsampling == "transpose" and factor == 2:
        return layers.Conv2DTranspose(width, 2, strides=2, name=f"{name}_upconv")(x)
    return layers.UpSampling2D(factor, interpolation="nearest", name=f"{name}_up")(x)


def unetplusplus_decoder(
    pyramid: dict[str, keras.KerasTensor],
    filters: Sequence[int],
    upsampling: str = "nearest",
    dropout: float = 0.0,
    bn_momentum: float = BN_MOMENTUM,
) -> keras.KerasTensor:
    """The feature map at stride 1 from ``pyramid`` ({"P<k>": stride-2**k feature}); ``filters``
    has one width per halving of the deepest stride, deepest first, as the U-Net decoder's."""
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling={upsampling!r}: choose from {', '.join(UPSAMPLING)}")
    levels = sorted(level(key) for key in pyramid)  # finest first
    deepest = levels[-1]
    if len(filters) != deepest:
        raise ValueError(
            f"decoder filters {list(filters)}: need {deepest} blocks to go from stride {2**deepest} back to 1"
        )
    width = {k: int(filters[deepest - k - 1]) for k in range(deepest)}
    nodes = {(k, 0): pyramid[f"P{k}"] for k in levels}
    for j in range(1, len(levels)):
        for index, k in enumerate(levels[: len(levels) - j]):
            coarser = levels[index + 1]
            name = f"nested{k}_{j}"
            below = _up(nodes[(coarser, j - 1)], 2 ** (coarser - k), width[k], upsampling, name)
            x = layers.Concatenate(name=f"{name}_concat")([*(nodes[(k, i)] for i in range(j)), below])
            nodes[(k, j)] = conv_block(x, width[k], name, dropout, bn_momentum)
    x = nodes[(levels[0], len(levels) - 1)]
    for k in range(levels[0] - 1, -1, -1):  # no encoder feature at these strides
        name = f"decoder_stride{2**k}"
        x = conv_block(_up(x, 2, width[k], upsampling, name), width[k], name, dropout, bn_momentum)
    return x
