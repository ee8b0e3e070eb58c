"""Every model and encoder option through the same checks, at tiny sizes: shapes, stride, the
``.keras`` round trip, mixed precision and a frozen encoder that is entirely in inference mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pytest
from PIL import Image

from animalseg.errors import ConfigError
from animalseg.inference import InferenceSettings, Predictor
from animalseg.models.base import SegmentationModel
from animalseg.models.blocks import batchnorm_layers
from animalseg.models.encoders import ENCODERS, build_encoder
from animalseg.models.unet import AttentionUNet, EncoderUNet, UNet
from animalseg.trained import load_trained

NUM_CLASSES = 3
TINY_DECODER = (16, 8, 8, 8, 4)


@dataclass(frozen=True)
class Case:
    """One model option at a tiny size, and the stride it must report."""

    id: str
    build: Callable[..., SegmentationModel]
    stride: int


def _encoder_unet(encoder: str, **options) -> Callable[..., SegmentationModel]:
    def build(**kwargs) -> SegmentationModel:
        return EncoderUNet(NUM_CLASSES, encoder, None, TINY_DECODER, **options, **kwargs)

    return build


CASES = [
    Case("unet", lambda **kw: UNet(NUM_CLASSES, base_filters=4, depth=2, dropout=0.1, **kw), 4),
    Case("attention_unet", lambda **kw: AttentionUNet(NUM_CLASSES, base_filters=4, depth=3, dropout=0.1, **kw), 8),
    Case("EfficientNetLite0", _encoder_unet("EfficientNetLite0"), 32),
    Case("EfficientNetLite1-blocks", _encoder_unet("EfficientNetLite1", encoder_pyramid="blocks"), 32),
    Case("EfficientNetB0", _encoder_unet("EfficientNetB0"), 32),
    Case("ResNet50", _encoder_unet("ResNet50"), 32),
    Case("EfficientNetLite0-fpn", _encoder_unet("EfficientNetLite0", decoder="fpn", decoder_channels=16), 32),
    Case(
        "EfficientNetLite0-deeplabv3plus",
        _encoder_unet("EfficientNetLite0", decoder="deeplabv3plus", decoder_channels=16, aspp_rates=(1, 2)),
        32,
    ),
    Case("EfficientNetLite0-unetplusplus", _encoder_unet("EfficientNetLite0", decoder="unetplusplus"), 32),
    Case("unetplusplus", lambda **kw: UNet(NUM_CLASSES, base_filters=4, depth=3, decoder="unetplusplus", **kw), 8),
    Case("fpn", lambda **kw: UNet(NUM_CLASSES, base_filters=4, depth=3, decoder="fpn", decoder_channels=8, **kw), 8),
    Case(
        "deeplabv3plus",
        lambda **kw: UNet(
            NUM_CLASSES, base_filters=4, depth=3, decoder="deeplabv3plus", decoder_channels=8, aspp_rates=(1, 2), **kw
        ),
        8,
    ),
]


def images(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def numpy_outputs(model: keras.Model, x: np.ndarray, training: bool = False) -> dict[str, np.ndarray]:
    return {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=training).items()}


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def case_model(request) -> tuple[Case, SegmentationModel]:
    """One model per case for the read-only checks (building ImageNet encoders takes seconds)."""
    colors = [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    return request.param, request.param.build(class_names=["bg", "cat", "dog"], class_colors=colors)


def test_output_stride_and_head_names(case_model):
    case, model = case_model
    assert model.output_stride == case.stride
    assert (model.semantic_head, model.boundary_head) == ("sem_logits", "boundary_logits")
    assert set(model.output) == {"sem_logits", "boundary_logits"}
    assert model.num_classes == NUM_CLASSES and model.class_names == ["bg", "cat", "dog"]


def test_every_batchnorm_is_reachable_through_nested_layers(case_model):
    _, model = case_model
    every = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert every and set(map(id, batchnorm_layers(model))) == set(map(id, every))  # synchronised BatchNorm


def test_outputs_have_the_input_size_for_sizes_divisible_by_the_stride(case_model):
    case, model = case_model
    s = case.stride
    for height, width in [(s, s), (2 * s, s), (s, 3 * s)]:
        outputs = model(images(height, width))
        assert outputs["sem_logits"].shape == (2, height, width, NUM_CLASSES)
        assert outputs["boundary_logits"].shape == (2, height, width, 1)


def test_an_input_not_divisible_by_the_stride_is_refused(case_model):
    case, model = case_model
    with pytest.raises(ValueError, match=f"output stride {case.stride}"):
        model(images(case.stride, case.stride + case.stride // 2))


def test_keras_file_round_trip_gives_the_same_model(case_model, tmp_path):
    case, model = case_model
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert loaded.output_stride == case.stride and loaded.class_colors == model.class_colors
    x = images(case.stride, 2 * case.stride)
    for key, value in numpy_outputs(model, x).items():
        np.testing.assert_array_equal(value, numpy_outputs(loaded, x)[key])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mixed_precision_keeps_the_heads_in_float32(case):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = case.build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("sem_logits").compute_dtype == "float32"
    assert model.encoder.compute_dtype == "bfloat16"
    outputs = model(images(case.stride, case.stride))
    assert {keras.backend.standardize_dtype(v.dtype) for v in outputs.values()} == {"float32"}
    assert np.isfinite(keras.ops.convert_to_numpy(outputs["sem_logits"])).all()


def _train_step(model: SegmentationModel, x: np.ndarray) -> None:
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        run_eagerly=True,  # one step: tracing an ImageNet encoder's train step costs seconds more
        loss={
            model.semantic_head: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            model.boundary_head: keras.losses.BinaryCrossentropy(from_logits=True),
        },
    )
    rng = np.random.default_rng(1)
    height, width = x.shape[1:3]
    targets = {
        model.semantic_head: rng.integers(0, NUM_CLASSES, (len(x), height, width)).astype("int32"),
        model.boundary_head: rng.integers(0, 2, (len(x), height, width, 1)).astype("float32"),
    }
    model.train_on_batch(x, targets)


def _weights(layer: keras.layers.Layer) -> list[np.ndarray]:
    return [np.array(w) for w in layer.get_weights()]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_frozen_encoder_is_in_inference_mode_until_unfrozen(case):
    model = case.build(freeze_encoder_epochs=2)
    assert model.encoder_frozen and model.freeze_encoder_epochs == 2
    x = images(case.stride, case.stride, batch=4)
    frozen_train = keras.ops.convert_to_numpy(model.encoder(x, training=True)[f"P{case.stride.bit_length() - 1}"])
    frozen_infer = keras.ops.convert_to_numpy(model.encoder(x, training=False)[f"P{case.stride.bit_length() - 1}"])
    np.testing.assert_array_equal(frozen_train, frozen_infer)  # BatchNorm and dropout both in inference mode
    decoder_train, decoder_infer = numpy_outputs(model, x, training=True), numpy_outputs(model, x)
    assert not np.array_equal(decoder_train["sem_logits"], decoder_infer["sem_logits"])  # the decoder still trains
    encoder_before, model_before = _weights(model.encoder), _weights(model)
    _train_step(model, x)
    assert _same(encoder_before, _weights(model.encoder))  # nor moving statistics
    assert not _same(model_before, _weights(model))  # the decoder and heads did train

    model.unfreeze_encoder()
    assert not model.encoder_frozen
    _train_step(model, x)
    assert not _same(encoder_before, _weights(model.encoder))
    assert not type(model).from_config(model.get_config()).encoder_frozen  # a checkpoint reloads as it was saved


@pytest.mark.parametrize("case", CASES[2:3] + CASES[:1], ids=["EfficientNetLite0", "unet"])
def test_frozen_encoder_batchnorm_keeps_its_statistics_while_the_encoder_trains(case):
    model = case.build(freeze_encoder_epochs=1, freeze_encoder_bn=True)
    model.unfreeze_encoder()  # as the trainer does after the frozen epochs: the BatchNorm stays frozen
    encoder_bn = list(batchnorm_layers(model.encoder))
    assert encoder_bn and not any(layer.trainable for layer in encoder_bn)
    decoder_bn = [layer for layer in batchnorm_layers(model) if layer not in encoder_bn]
    assert decoder_bn and all(layer.trainable for layer in decoder_bn)
    x = images(case.stride, case.stride, batch=4)
    bn_before, encoder_before = [_weights(layer) for layer in encoder_bn], _weights(model.encoder)
    _train_step(model, x)
    assert all(_same(before, _weights(layer)) for before, layer in zip(bn_before, encoder_bn, strict=True))
    assert not _same(encoder_before, _weights(model.encoder))  # its convolutions did train
    reloaded = type(model).from_config(model.get_config())
    assert reloaded.freeze_encoder_bn and not any(layer.trainable for layer in batchnorm_layers(reloaded.encoder))


def test_efficientnet_stochastic_depth_is_live_when_not_frozen():
    """The check above means something: unfrozen, EfficientNet's drop-connect is random."""
    encoder = build_encoder("EfficientNetB0", weights=None)
    backbone = encoder.pyramid.get_layer("efficientnetb0")
    assert isinstance(backbone.get_layer("block2b_drop"), keras.layers.Dropout)
    for layer in backbone.layers:  # BatchNorm in inference mode: only dropout differs with training
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    x = images(32, 32)
    live = keras.ops.convert_to_numpy(encoder(x, training=True)["P5"])
    assert not np.array_equal(live, keras.ops.convert_to_numpy(encoder(x, training=False)["P5"]))


def test_parameter_counts_match_the_models_before_the_split():
    assert UNet(7).count_params() == 31_049_864
    assert AttentionUNet(7).count_params() == 31_754_828
    assert EncoderUNet(7, "EfficientNetLite0", None).count_params() == 9_478_959
    assert EncoderUNet(7, "EfficientNetB0", None).count_params() == 10_115_499


def test_attention_coefficients_lie_in_unit_interval():
    model = AttentionUNet(num_classes=3, base_filters=4, depth=2)
    names = [layer.name for layer in model.layers if layer.name.endswith("_coefficients")]
    assert len(names) == 2
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    for coefficients in probe(images(16, 16)):
        values = keras.ops.convert_to_numpy(coefficients)
        assert values.min() >= 0.0 and values.max() <= 1.0


def test_the_encoder_table_and_its_errors():
    assert {"unet", "EfficientNetB0", "EfficientNetV2S", "ResNet50", "EfficientNetLite0"} <= set(ENCODERS)
    with pytest.raises(ConfigError, match="model.encoder=VGG16: unknown encoder"):
        build_encoder("VGG16")
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_encoder("unet", weights="imagenet")
    with pytest.raises(ValueError, match="need 5 blocks"):
        EncoderUNet(3, "EfficientNetLite0", None, (16, 8))


def test_a_keras_file_alone_is_enough_to_predict(tmp_path):
    model = UNet(NUM_CLASSES, base_filters=4, depth=2, class_names=["bg", "cat", "dog"], class_colors=[[0, 0, 0]] * 3)
    path = tmp_path / "alone" / "best.keras"  # no classes.json beside it, no run config above it
    path.parent.mkdir()
    model.save(path)
    trained = load_trained(str(path), None, None, tmp_path)
    assert trained.run_config is None and trained.class_names == ["bg", "cat", "dog"]
    image = np.asarray(Image.new("RGB", (13, 7), (200, 30, 30)))  # odd size: padded to the stride
    masks, probabilities = Predictor(trained.model, InferenceSettings()).predict(image[None])
    assert masks.shape == (1, 7, 13) and probabilities.shape == (1, 7, 13, NUM_CLASSES)
