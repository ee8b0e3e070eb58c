"""The Predictor owns how a model predicts: its settings travel in the model file, a sliding window
blends to what a whole pass gives and never shows the model more than a window, post-processing
cleans masks by documented rules, and the commands predict as the model says unless told otherwise."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import animalseg.evaluate
from animalseg.build import inference_settings
from animalseg.errors import ConfigError
from animalseg.export import check_settings
from animalseg.inference import InferenceSettings, Predictor, TestTimeAugmentation, settings_of
from animalseg.inference.postprocess import fill_holes, merge_small_regions
from animalseg.inference.predictor import cleaned
from animalseg.models.unet import UNet
from tests.helpers import CONF, ROOT, TINY, compose_config, quiet_env


def pointwise(seen: list):
    """A 'model' whose logits at a pixel depend on that pixel only (any tiling gives the same)."""

    def forward(inputs):
        seen.append(inputs.shape)
        sem = np.stack([inputs[..., 0] / 64, inputs[..., 1] / 64, inputs[..., 2] / 64 - 1], axis=-1)
        return {"sem_logits": sem.astype(np.float32), "boundary_logits": inputs[..., :1] / 128 - 1}

    return SimpleNamespace(output_stride=8, semantic_head="sem_logits", predict_on_batch=forward)


def test_the_settings_are_saved_in_the_model_and_come_back(tmp_path):
    cfg = compose_config([*TINY, "tta=flip", "inference.mode=slide", "inference.min_area=50"])
    settings = inference_settings(cfg)
    assert (settings.size, settings.window, settings.tta.flip) == (cfg.data.eval_size, cfg.data.crop_size, True)
    model = UNet(num_classes=3, base_filters=4, depth=2)
    model.inference = settings.to_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert settings_of(loaded) == settings and Predictor(loaded).settings == settings


def test_a_sliding_window_blends_to_the_whole_image_and_sees_only_windows():
    images = np.random.default_rng(0).uniform(0, 255, (2, 300, 410, 3)).astype(np.float32)
    whole_seen, slide_seen = [], []
    whole = Predictor(pointwise(whole_seen), InferenceSettings()).outputs(images)
    settings = InferenceSettings(mode="slide", window=100, overlap=0.25, window_batch=3)
    slide = Predictor(pointwise(slide_seen), settings).outputs(images)
    for key in whole:
        np.testing.assert_allclose(slide[key], whole[key], rtol=1e-5, atol=1e-5)
    assert whole_seen == [(2, 304, 416, 3)]
    assert max(shape[0] for shape in slide_seen) == 3 and {shape[1:] for shape in slide_seen} == {(104, 104, 3)}


def test_the_step_between_windows_is_settable_in_pixels():
    images = np.random.default_rng(1).uniform(0, 255, (1, 120, 200, 3)).astype(np.float32)
    seen = []
    settings = InferenceSettings(mode="slide", window=64, step=48, window_batch=1)
    slide = Predictor(pointwise(seen), settings).outputs(images)
    np.testing.assert_allclose(
        slide["sem_logits"],
        Predictor(pointwise([]), InferenceSettings()).outputs(images)["sem_logits"],
        rtol=1e-5,
        atol=1e-5,
    )
    assert len(seen) == 3 * 4  # rows at 0, 48, 56; columns at 0, 48, 96, 136
    assert "sliding 64 px windows, every 48 px" in settings.describe()
    with pytest.raises(
        ConfigError, match="inference.step=100: must be a whole number of pixels from 1 to inference.window"
    ):
        InferenceSettings(window=64, step=100)


def test_a_window_larger_than_the_image_is_one_whole_pass():
    seen = []
    Predictor(pointwise(seen), InferenceSettings(mode="slide", window=512)).outputs(np.zeros((1, 50, 60, 3)))
    assert seen == [(1, 56, 64, 3)]


def test_post_processing_fills_holes_and_merges_specks():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:10, 2:10] = 2  # an object with a hole of background and a speck of class 1 inside
    mask[4:6, 4:6] = 0
    mask[7, 7] = 1
    mask[0, 11] = 1  # a speck on the background
    filled = fill_holes(mask)
    assert filled[4:6, 4:6].tolist() == [[2, 2], [2, 2]] and filled[7, 7] == 1 and filled[0, 11] == 1
    merged = merge_small_regions(mask, min_area=5)
    assert merged[4:6, 4:6].tolist() == [[2, 2], [2, 2]] and merged[7, 7] == 2 and merged[0, 11] == 0
    assert (merge_small_regions(mask, min_area=1) == mask).all()
    scores = np.eye(3, dtype=np.float32)[mask][None]
    assert (cleaned(scores, np.zeros((1, 12, 12, 3)), InferenceSettings(min_area=5))[0][0] == merged).all()


def test_bad_settings_are_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"^inference.mode='tiles': must be one of whole, slide$"):
        InferenceSettings(mode="tiles")
    with pytest.raises(ConfigError, match="inference.overlap=1.0"):
        InferenceSettings(overlap=1.0)
    with pytest.raises(ConfigError, match="inference.colour: not a setting"):
        InferenceSettings.from_config({"colour": 1})


def test_an_export_refuses_what_its_graph_cannot_carry():
    with pytest.raises(ConfigError, match="inference.mode=slide: an export traces whole-image prediction"):
        check_settings(InferenceSettings(mode="slide"))
    with pytest.raises(ConfigError, match="post-processing has no graph"):
        check_settings(InferenceSettings(fill_holes=True))
    check_settings(InferenceSettings(tta=TestTimeAugmentation(flip=True, scales=(0.5, 1.0))))


def test_a_data_override_changes_which_images_not_how_the_model_predicts(tmp_path, capsys):
    """The model predicts at the size saved in it whatever data.eval_size says; inference.size
    changes it, and the command says so."""
    model = UNet(num_classes=7, base_filters=4, depth=2)
    model.inference = InferenceSettings(size=32).to_config()
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.keras"
    model.save(checkpoint)
    common = [f"checkpoint={checkpoint}", f"paths.output_dir={tmp_path / 'out'}", *TINY[-3:]]

    def evaluate(*overrides: str) -> str:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            animalseg.evaluate.evaluate(compose(config_name="evaluate", overrides=[*common, *overrides]))
        return capsys.readouterr().out

    printed = evaluate("data.eval_size=64")
    assert "predicts with: long side 32; no TTA; no post-processing" in printed and "overrides" not in printed
    printed = evaluate("inference.size=64", "inference.min_area=10")
    assert "predicts with: long side 64; no TTA; regions < 10 px merged" in printed
    assert "this command's overrides: inference.size=64, inference.min_area=10" in printed


def test_the_mlflow_models_code_loads_nothing_of_training():
    code = (
        "import sys, animalseg.inference.pyfunc; "
        "print(sorted(m for m in sys.modules if m.startswith('animalseg.') and m.split('.')[1] "
        "not in ('inference', 'models', 'compat', 'errors')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=quiet_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_config_mistakes_in_the_settings_are_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"^tta.scales=\[\]: must be a non-empty list"):
        inference_settings(compose_config([*TINY, "tta.scales=[]"]))
    with pytest.raises(ConfigError, match="^inference.colour: not a setting"):
        inference_settings(compose_config([*TINY, "+inference.colour=1"]))
    with pytest.raises(ConfigError, match=r"^inference.overlap=0.95: must be a number in \[0, 0.9\]"):
        InferenceSettings(overlap=0.95)


def test_an_ensemble_post_processes_its_averaged_mask():
    from animalseg.sources import Source, ensemble_outputs

    class Fixed(Source):
        def __init__(self, probabilities, settings):
            super().__init__("fixed", ["bg", "a"], np.zeros((2, 3), np.uint8))
            self.probabilities, self.settings = probabilities, settings

        def outputs(self, images):
            return np.argmax(self.probabilities, -1).astype(np.uint8), self.probabilities

    probabilities = np.zeros((1, 12, 12, 2), np.float32)
    probabilities[..., 0] = 1.0
    probabilities[0, 5, 5] = [0.0, 1.0]  # a one-pixel speck of class 1
    cleaned = InferenceSettings(min_area=4)
    masks, _ = ensemble_outputs(
        [Fixed(probabilities, cleaned), Fixed(probabilities, cleaned)], np.zeros((1, 12, 12, 3))
    )
    assert masks.max() == 0
    masks, _ = ensemble_outputs([Fixed(probabilities, None), Fixed(probabilities, None)], np.zeros((1, 12, 12, 3)))
    assert masks[0, 5, 5] == 1


def test_evaluate_refuses_the_data_keys_that_no_longer_say_how_a_model_predicts(tmp_path):
    result = subprocess.run(
        [sys.executable, "evaluate.py", f"checkpoint={tmp_path / 'none.keras'}", "data.eval_size=300"],
        capture_output=True, text=True, cwd=ROOT, env=quiet_env(),
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: data.eval_size=300: a model predicts with its own settings; give inference.size=300" in result.stderr


def test_the_dense_crf_follows_the_photos_edges():
    """Probabilities unsure near an edge of the photo settle on the side of like colour."""
    pytest.importorskip("pydensecrf")
    from animalseg.inference.postprocess import dense_crf

    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255  # a dark left half, a bright right half
    probabilities = np.full((40, 40, 2), 0.5, np.float32)
    probabilities[:, :10] = [0.9, 0.1]
    probabilities[:, 30:] = [0.1, 0.9]  # columns 10-29 undecided
    refined = dense_crf(image, probabilities, iterations=5)
    masks = np.argmax(refined, -1)
    assert (masks[:, :20] == 0).all() and (masks[:, 20:] == 1).all()
    settings = InferenceSettings(crf_iterations=5)
    assert (cleaned(probabilities[None], image[None], settings)[0][0] == masks).all()
    assert "dense CRF x5" in settings.describe()
