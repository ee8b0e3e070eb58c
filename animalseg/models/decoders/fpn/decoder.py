"""FPN: a top-down pyramid, every level brought to stride 4 and summed, then up to stride 1.

As in the semantic branch of Panoptic FPN (and segmentation_models_pytorch's FPN): 1x1 laterals
to ``pyramid_channels`` on the levels from stride 4 down, a top-down path that adds each
upsampled coarser level, then per level a stack of [conv3x3, BatchNorm, ReLU, up x2] blocks to
stride 4 with ``segmentation_channels``, summed. The result is upsampled bilinearly to the input
resolution, where the heads classify each pixel.
"""

from __future__ import annotations

import keras
from keras import layers

from animalseg.models.blocks import BN_MOMENTUM, BilinearUpsampling
from animalseg.models.encoders.base import level

MERGE_LEVEL = 2  # stride 4: the finest level the pyramid is merged at


def _conv_bn_relu(x: keras.KerasTensor, filters: int, name: str, bn_momentum: float) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def fpn_decoder(
    pyramid: dict[str, keras.KerasTensor],
    pyramid_channels: int = 256,
    segmentation_channels: int = 128,
    dropout: float = 0.0,
    bn_momentum: float = BN_MOMENTUM,
) -> keras.KerasTensor:
    """The feature map at stride 1 from ``pyramid`` ({"P<k>": stride-2**k feature}, k >= 2 used)."""
    levels = sorted((level(key) for key in pyramid if level(key) >= MERGE_LEVEL), reverse=True)
    if not levels or levels[-1] != MERGE_LEVEL:
        raise ValueError(f"the FPN decoder needs a stride-4 level (P2); the pyramid has {sorted(pyramid)}")
    top_down: dict[int, keras.KerasTensor] = {}
    above = None
    for k in levels:  # coarsest first
        lateral = layers.Conv2D(pyramid_channels, 1, name=f"fpn_lateral{k}")(pyramid[f"P{k}"])
        if above is not None:
            lateral = layers.Add(name=f"fpn_topdown{k}")([layers.UpSampling2D(2, name=f"fpn_up{k}")(above), lateral])
        top_down[k] = above = lateral
    merged = []
    for k, feature in top_down.items():
        x = feature
        for step in range(max(1, k - MERGE_LEVEL)):
            x = _conv_bn_relu(x, segmentation_channels, f"fpn_seg{k}_{step}", bn_momentum)
            if k > MERGE_LEVEL:
                x = BilinearUpsampling(2, name=f"fpn_seg{k}_{step}_up")(x)
        merged.append(x)
    x = layers.Add(name="fpn_merge")(merged) if len(merged) > 1 else merged[0]
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name="fpn_dropout")(x)
    return BilinearUpsampling(2**MERGE_LEVEL, name="fpn_to_input")(x)
