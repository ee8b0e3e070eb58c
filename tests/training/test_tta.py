"""Test-time augmentation: flips and scales averaged as probabilities at native resolution, one
setting (the tta group) for per-epoch validation, evaluate.py and predict.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

import animalseg.evaluate
import animalseg.predict
import animalseg.sources
from animalseg.build import inference_settings, instantiate_callbacks
from animalseg.errors import ConfigError
from animalseg.inference import NO_TTA, InferenceSettings, Predictor, TestTimeAugmentation
from animalseg.models.unet import UNet
from tests.helpers import CONF, TINY, compose_config

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 24, 40, 3)).astype(np.float32)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def predict_views(forward, images, size, stride, tta=NO_TTA, antialias=False):
    """Every head's outputs at the images' size through a Predictor over ``forward``."""
    model = SimpleNamespace(output_stride=stride, semantic_head="sem_logits", predict_on_batch=forward)
    return Predictor(model, InferenceSettings(size=size, antialias=antialias, tta=tta)).outputs(images)


def pointwise(inputs):
    """A flip-equivariant 'model': every pixel's logits from its own colour only."""
    sem = np.stack([inputs[..., 0] / 64, inputs[..., 1] / 64, inputs[..., 2] / 64 - 1], axis=-1)
    return {"sem_logits": sem, "boundary_logits": inputs[..., :1] / 128 - 1}


def test_flip_of_a_flip_equivariant_model_changes_nothing():
    plain = predict_views(pointwise, IMAGES, 24, 4)
    flipped = predict_views(pointwise, IMAGES, 24, 4, TestTimeAugmentation(flip=True))
    np.testing.assert_allclose(_softmax(flipped["sem_logits"]), _softmax(plain["sem_logits"]), atol=1e-5)
    np.testing.assert_array_equal(np.argmax(flipped["sem_logits"], -1), np.argmax(plain["sem_logits"], -1))
    np.testing.assert_allclose(flipped["boundary_logits"], plain["boundary_logits"], atol=1e-4)


def test_flip_averages_a_view_with_its_mirror():
    def leftward(inputs):  # favours class 1 on the left of what it sees: not flip-equivariant
        ramp = np.linspace(1.0, -1.0, inputs.shape[2], dtype=np.float32)
        sem = np.broadcast_to(ramp[None, None, :, None] * [0.0, 1.0], (*inputs.shape[:3], 2))
        return {"sem_logits": sem, "boundary_logits": np.zeros((*inputs.shape[:3], 1), np.float32)}

    out = predict_views(leftward, IMAGES, None, 8, TestTimeAugmentation(flip=True))
    probs = _softmax(out["sem_logits"])
    np.testing.assert_allclose(probs, probs[:, :, ::-1], atol=1e-5)  # the average is mirror-symmetric
    assert not np.allclose(_softmax(predict_views(leftward, IMAGES, None, 8)["sem_logits"]), probs, atol=1e-3)


def test_scales_average_probabilities_not_logits():
    def by_width(inputs):  # class 0's logit is the width the model was given / 10
        shape = (*inputs.shape[:3], 1)
        sem = np.concatenate([np.full(shape, inputs.shape[2] / 10, np.float32), np.zeros(shape, np.float32)], -1)
        return {"sem_logits": sem, "boundary_logits": np.zeros(shape, np.float32)}

    images = IMAGES[:, :, :24]  # 24 x 24, stride 4: scales 0.5 and 1.0 give widths 12 and 24
    out = predict_views(by_width, images, 24, 4, TestTimeAugmentation(scales=[0.5, 1.0]))
    expected = (_softmax(np.array([1.2, 0.0])) + _softmax(np.array([2.4, 0.0]))) / 2
    np.testing.assert_allclose(_softmax(out["sem_logits"]), np.broadcast_to(expected, (2, 24, 24, 2)), atol=1e-6)
    assert out["sem_logits"].shape == (2, 24, 24, 2)  # at the native size
    assert not np.allclose(expected, _softmax(np.array([1.8, 0.0])), atol=1e-3)  # the mean of logits differs


def test_bad_scales_name_the_key():
    with pytest.raises(ConfigError, match="tta.scales"):
        TestTimeAugmentation(scales=[])


def test_the_options():
    setting = instantiate(compose_config(["tta=flip_scales"]).tta)
    assert (setting.flip, setting.scales) == (True, (0.75, 1.0, 1.25))
    assert not instantiate(compose_config().tta).enabled


def test_the_setting_reaches_per_epoch_validation():
    """The run's tta and data.antialias go into the model's saved settings, which validation uses."""
    cfg = compose_config([*TINY, "tta=flip_scales", "data.antialias=true"])
    callbacks = instantiate_callbacks(cfg)
    evaluation = next(c for c in callbacks if c.name == "evaluation")
    data = instantiate(cfg.data)
    model = UNet(num_classes=7, base_filters=4, depth=2)
    model.inference = inference_settings(cfg).to_config()
    evaluation.bind(SimpleNamespace(data=data, model=model))
    settings = evaluation.evaluator.predictor(model).settings
    assert (settings.tta.flip, settings.tta.scales, settings.antialias) == (True, (0.75, 1.0, 1.25), True)
    assert settings.size == cfg.data.eval_size


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny trained-shaped run folder: checkpoints/last.keras and the run's config.yaml (tta=flip)."""
    model = UNet(num_classes=7, base_filters=4, depth=2)
    model(np.zeros((1, 32, 32, 3), np.float32))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    path = tmp_path / "run" / "checkpoints" / "last.keras"
    model.save(path)
    OmegaConf.save(compose_config([*TINY, "tta=flip"]), tmp_path / "run" / "config.yaml")
    return path


def _compose(name, overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def test_the_setting_reaches_evaluate(checkpoint, tmp_path, capsys):
    common = [f"checkpoint={checkpoint}", f"paths.output_dir={tmp_path / 'out'}"]
    metrics = animalseg.evaluate.evaluate(_compose("evaluate", [*common, "use_run_config=false", "tta=flip_scales"]))
    assert "eval_val_tta_miou" in metrics
    printed = capsys.readouterr().out
    assert "predicts with: " in printed and "TTA: scales x0.75, x1, x1.25 + flips" in printed
    assert "this command's overrides: tta: " in printed
    animalseg.evaluate.evaluate(_compose("evaluate", common))  # not given: the model's own (its run's flip)
    assert "TTA: scales x1 + flips" in capsys.readouterr().out
    animalseg.evaluate.evaluate(_compose("evaluate", [*common, "use_run_config=false", "flip_tta=true"]))
    assert "TTA: scales x1 + flips" in capsys.readouterr().out


def test_the_setting_reaches_predict(checkpoint, tmp_path, capsys):
    Image.fromarray(RNG.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    overrides = [f"checkpoint={checkpoint}", f"input={tmp_path / 'a.png'}", f"output_dir={tmp_path / 'pred'}"]
    animalseg.predict.predict(_compose("predict", [*overrides, "tta=flip_scales"]))
    assert "TTA: scales x0.75, x1, x1.25 + flips" in capsys.readouterr().out
    assert np.array(Image.open(tmp_path / "pred" / "a_mask.png")).shape == (20, 28)
