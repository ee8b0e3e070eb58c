"""U-Net and Attention U-Net (the report's first two architectures)."""

from __future__ import annotations

import keras
from keras import layers

from animalseg.models.blocks import BN_MOMENTUM, attention_gate, conv_block
from animalseg.models.encoders import build_encoder, preprocess
from animalseg.models.heads import segmentation_heads


def build_unet(
    num_classes: int,
    base_filters: int = 64,
    depth: int = 4,
    dropout: float = 0.0,
    attention: bool = False,
    bn_momentum: float = BN_MOMENTUM,
    name: str = "unet",
) -> keras.Model:
    """A U-Net with ``depth`` down and up blocks; ``attention`` gates every skip connection.

    Input: (H, W, 3) images in [0, 255], H and W divisible by 2**depth (``model.stride``).
    Outputs: ``sem_logits`` (H, W, num_classes) and ``boundary_logits`` (H, W, 1).
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    skips = []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, f"down{level + 1}", dropout, bn_momentum)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = conv_block(x, base_filters * 2**depth, "bottleneck", dropout, bn_momentum)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        skip = skips[level]
        if attention:
            skip = attention_gate(skip, x, filters, f"up{level + 1}_attention", bn_momentum)
        x = layers.Concatenate(name=f"up{level + 1}_concat")([skip, x])
        x = conv_block(x, filters, f"up{level + 1}", dropout, bn_momentum)
    return keras.Model(inputs, segmentation_heads(x, num_classes), name=name)


def build_attention_unet(
    num_classes: int,
    base_filters: int = 64,
    depth: int = 4,
    dropout: float = 0.0,
    bn_momentum: float = BN_MOMENTUM,
    name: str = "attention_unet",
) -> keras.Model:
    """The Attention U-Net: the U-Net with an additive attention gate on every skip."""
    return build_unet(num_classes, base_filters, depth, dropout, True, bn_momentum, name)


def build_unet_encoder(
    num_classes: int,
    encoder: str = "EfficientNetB3",
    encoder_weights: str | None = "imagenet",
    decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16),
    dropout: float = 0.0,
    bn_momentum: float = BN_MOMENTUM,
    freeze_encoder_epochs: int = 0,
    name: str | None = None,
) -> keras.Model:
    """A U-Net decoder on an ImageNet encoder from the table in ``encoders.py``.

    Skips at strides 16, 8, 4 and 2 are merged on the way up and a last block restores the input
    resolution, so the logits are at the input size (divisible by 32). With
    ``freeze_encoder_epochs`` > 0 the encoder starts frozen (BatchNorm in inference mode) and the
    trainer unfreezes it after that many epochs (``model.freeze_encoder_epochs``).
    """
    features, preprocessing = build_encoder(encoder, encoder_weights)
    for layer in features.layers:  # keras.applications use 0.99, too slow for tens of steps per epoch
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    inputs = keras.Input((None, None, 3), name="image")
    *skips, x = features(preprocess(inputs, preprocessing))
    for level, filters in enumerate(decoder_filters):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"decoder{level + 1}_up")(x)
        if level < len(skips):
            x = layers.Concatenate(name=f"decoder{level + 1}_concat")([x, skips[-1 - level]])
        x = conv_block(x, filters, f"decoder{level + 1}", dropout, bn_momentum)
    model = keras.Model(inputs, segmentation_heads(x, num_classes), name=name or f"unet_{encoder.lower()}")
    if freeze_encoder_epochs > 0:
        features.trainable = False
        model.freeze_encoder_epochs = int(freeze_encoder_epochs)
    return model
