import keras
import numpy as np
import pytest

from animalseg.models.unet import build_attention_unet, build_unet


@pytest.mark.parametrize(("builder", "millions"), [(build_unet, 31.0), (build_attention_unet, 35.0)])
def test_parameter_counts_at_base_64_match_the_report(builder, millions):
    model = builder(num_classes=7, base_filters=64)
    assert abs(model.count_params() / 1e6 - millions) / millions < 0.10


@pytest.mark.parametrize("builder", [build_unet, build_attention_unet])
@pytest.mark.parametrize("size", [(32, 32), (48, 64), (64, 32)])
def test_outputs_have_the_input_size(builder, size):
    model = builder(num_classes=5, base_filters=4, depth=3)
    outputs = model(np.zeros((2, *size, 3), "float32"))
    assert outputs["sem_logits"].shape == (2, *size, 5)
    assert outputs["boundary_logits"].shape == (2, *size, 1)


def test_attention_coefficients_lie_in_unit_interval():
    model = build_attention_unet(num_classes=3, base_filters=4, depth=2)
    names = [layer.name for layer in model.layers if layer.name.endswith("_coefficients")]
    assert len(names) == 2
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    for coefficients in probe(images):
        values = keras.ops.convert_to_numpy(coefficients)
        assert values.min() >= 0.0 and values.max() <= 1.0


@pytest.mark.parametrize("builder", [build_unet, build_attention_unet])
def test_keras_save_and_load_give_identical_predictions(builder, tmp_path):
    model = builder(num_classes=4, base_filters=4, depth=2, dropout=0.1)
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for key in ("sem_logits", "boundary_logits"):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model(images)[key]),
            keras.ops.convert_to_numpy(loaded(images)[key]),
        )
