"""ImageNet-encoder U-Nets: shapes for the families the model harness leaves out, offline
messages, genuine Lite weights, two-phase training with a frozen encoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.applications import efficientnet as keras_efficientnet

from animalseg.errors import ConfigError
from animalseg.models.encoders import build_encoder
from animalseg.models.encoders.efficientnet_lite import build_efficientnet_lite, lite_blocks_args, load_lite_classifier
from animalseg.models.unet import EncoderUNet

SHAPE_ENCODERS = ["EfficientNetB3", "EfficientNetV2B0", "EfficientNetV2S", "EfficientNetLite1"]


@pytest.mark.slow
@pytest.mark.parametrize("encoder", SHAPE_ENCODERS)
def test_logits_come_out_at_the_input_size(encoder):
    model = EncoderUNet(num_classes=5, encoder=encoder, encoder_weights=None, decoder_filters=(16, 8, 8, 8, 4))
    for size in [(64, 64), (64, 96)]:
        outputs = model(np.zeros((1, *size, 3), "float32"))
        assert outputs["sem_logits"].shape == (1, *size, 5)
        assert outputs["boundary_logits"].shape == (1, *size, 1)


def test_the_pyramid_is_at_strides_2_to_32():
    encoder = build_encoder("EfficientNetV2B0", weights=None)
    pyramid = encoder(np.zeros((1, 128, 128, 3), "float32"))
    assert {key: f.shape[1] for key, f in pyramid.items()} == {"P1": 64, "P2": 32, "P3": 16, "P4": 8, "P5": 4}


def test_the_blocks_pyramid_reads_the_stage_outputs_and_is_offered_where_it_exists():
    widths = {
        pyramid: {
            k: f.shape[-1]
            for k, f in build_encoder("EfficientNetLite0", weights=None, pyramid=pyramid).pyramid.output.items()
        }
        for pyramid in ("expanded", "blocks")
    }
    assert widths["blocks"] == {"P1": 16, "P2": 24, "P3": 40, "P4": 112, "P5": 320}
    assert widths["expanded"] == {"P1": 96, "P2": 144, "P3": 240, "P4": 672, "P5": 1280}
    with pytest.raises(ConfigError, match="model.encoder_pyramid=blocks: ResNet50 offers expanded"):
        build_encoder("ResNet50", weights=None, pyramid="blocks")


def test_offline_imagenet_names_the_file_and_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.efficientnet.file_utils.get_file", offline)
    with pytest.raises(ConfigError) as error:
        build_encoder("EfficientNetB3", weights="imagenet")
    message = str(error.value)
    assert "efficientnetb3_notop.h5" in message and "$KERAS_HOME/models/" in message
    assert "model.encoder_weights=/path/to/" in message and "EfficientNetLite0" in message


def test_local_weights_file_and_missing_file(tmp_path):
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "resnet.weights.h5"
    source.save_weights(path)
    pyramid = build_encoder("ResNet50", weights=str(path)).pyramid
    pyramid.get_layer("caffe_preprocessing")
    np.testing.assert_array_equal(
        pyramid.get_layer("resnet50").get_layer("conv1_conv").get_weights()[0],
        source.get_layer("conv1_conv").get_weights()[0],
    )
    with pytest.raises(ConfigError, match="file not found"):
        build_encoder("ResNet50", weights=str(tmp_path / "missing.h5"))


def _photos():
    skimage_data = pytest.importorskip("skimage.data")
    # (image, acceptable ImageNet classes): the cat Chelsea and a cup of coffee
    return [(skimage_data.chelsea(), {281, 282, 283, 284, 285}), (skimage_data.coffee(), {967, 968, 504})]


@pytest.mark.parametrize("variant", ["EfficientNetLite0", "EfficientNetLite1", "EfficientNetLite2"])
def test_converted_lite_classifier_recognises_real_photos(variant, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # convert afresh, offline
    model = load_lite_classifier(variant, "imagenet")
    assert (tmp_path / "models" / f"{variant.lower()}_imagenet.weights.h5").is_file()
    size = model.input_shape[1]
    for photo, classes in _photos():
        image = tf.image.resize(photo[None].astype("float32"), (size, size))
        assert int(np.argmax(model.predict(image, verbose=0)[0])) in classes


def test_lite0_has_the_published_parameter_count():
    assert abs(load_lite_classifier("EfficientNetLite0", None).count_params() - 4.69e6) < 0.01e6


def test_lite2_keeps_the_stem_and_head_widths_of_its_weights():
    """Lite2 widens the blocks (x1.1) but not the stem (32) or head (1280), unlike Keras's builder."""
    model = build_efficientnet_lite("EfficientNetLite2")
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 1280
    assert len([layer for layer in model.layers if layer.name.endswith("_dwconv")]) == 21


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "depth"), [("EfficientNetLite0", 1.0), ("EfficientNetLite1", 1.1)])
def test_lite0_and_lite1_graphs_are_the_ones_keras_built_before(variant, depth):
    """Same layers, names and shapes as Keras's builder with Lite's block arguments (width 1.0),
    so checkpoints saved before the Lite builder existed load unchanged."""
    before = keras_efficientnet.EfficientNet(
        1.0, 1.0, 224, activation="relu6", blocks_args=lite_blocks_args(depth), weights=None, include_top=True
    )
    now = build_efficientnet_lite(variant, include_top=True, input_shape=(224, 224, 3))

    def layout(model):
        return [(type(la).__name__, la.name, [tuple(w.shape) for w in la.weights]) for la in model.layers[3:]]

    assert layout(now) == layout(before)


@pytest.mark.slow
def test_pretrained_unet_round_trips_through_keras_file(tmp_path):
    model = EncoderUNet(
        num_classes=3, encoder="EfficientNetLite0", encoder_weights="imagenet", decoder_filters=(16, 8, 8, 8, 4)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(images)["sem_logits"]),
        keras.ops.convert_to_numpy(loaded(images)["sem_logits"]),
    )


@pytest.mark.slow
def test_frozen_encoder_trains_only_the_decoder_then_unfreezes(tmp_path):
    from animalseg.run import run
    from tests.helpers import compose_config, tiny

    cfg = compose_config(
        [
            *tiny("unet_efficientnet"),
            "model.encoder_weights=imagenet",
            "model.freeze_encoder_epochs=1",
            "trainer.epochs=2",
            f"logger.tracking_uri=sqlite:///{tmp_path}/m.db",
        ]
    )
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert "val_miou" in metrics
    final = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert not final.encoder_frozen
    pretrained = build_encoder("EfficientNetLite0", weights="imagenet").get_weights()
    changed = [not np.array_equal(a, b) for a, b in zip(final.encoder.get_weights(), pretrained, strict=True)]
    assert any(changed)  # the second epoch trained the encoder
