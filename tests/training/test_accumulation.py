"""trainer.accumulate_steps: N batches of B train as one batch of N x B."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from animalseg.build import build_run, instantiate_optimizer
from animalseg.config import validate_config
from animalseg.errors import ConfigError
from animalseg.files import atomic_save
from animalseg.training.trainer import accumulation
from tests.helpers import TINY, compose_config


def _no_batchnorm_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(features))


def _compiled(accumulate: int) -> keras.Model:
    cfg = compose_config(["optimizer=adamw", f"trainer.accumulate_steps={accumulate}"])
    model = _no_batchnorm_model()
    optimizer = instantiate_optimizer(cfg.optimizer, learning_rate=1e-2, **accumulation(cfg.trainer.accumulate_steps))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _batches(count: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(count, 8, 8, 3)).astype("float32")
    return images, rng.integers(0, 4, size=(count, 8, 8)).astype("int32")


def _trained_weights(batch_size: int, accumulate: int) -> list[np.ndarray]:
    model = _compiled(accumulate)
    images, labels = _batches()
    model.fit(images, labels, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


def test_four_batches_of_four_update_as_one_batch_of_sixteen():
    accumulated, whole = _trained_weights(4, 4), _trained_weights(16, 1)
    for a, b in zip(accumulated, whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and differ from four plain updates of batch 4: the comparison can fail
    plain = _trained_weights(4, 1)
    assert max(np.abs(a - b).max() for a, b in zip(plain, whole, strict=True)) > 1e-3


def test_a_checkpoint_written_between_updates_resumes_the_accumulated_gradients(tmp_path):
    images, labels = _batches(12)
    straight = _compiled(4)
    straight.fit(images, labels, batch_size=2, epochs=1, shuffle=False, verbose=0)  # 6 batches: 1 update, 2 held
    first = _compiled(4)
    first.fit(images[:6], labels[:6], batch_size=2, epochs=1, shuffle=False, verbose=0)  # 3 held, no update
    atomic_save(first, tmp_path / "mid.keras")
    resumed = _compiled(4)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(tmp_path / "mid.keras")
    resumed.fit(images[6:], labels[6:], batch_size=2, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_the_ema_spans_as_many_updates_with_accumulation():
    assert accumulation(1, 0.9) == {}
    arguments = accumulation(4, 0.9)
    assert arguments["gradient_accumulation_steps"] == 4
    assert arguments["ema_momentum"] ** 4 == pytest.approx(0.9)


def test_a_run_builds_its_optimizer_with_the_accumulation_and_scales_its_rate_to_the_whole_batch(tmp_path):
    overrides = [*TINY, "trainer.accumulate_steps=4", "schedule=constant", "hardware.lr_scaling=linear"]
    overrides += ["callbacks=[default,ema]", "callbacks.ema.momentum=0.9"]
    overrides.append(f"paths.output_dir={tmp_path}")
    cfg = compose_config(overrides)
    parts = build_run(cfg, tracker_args={"tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    optimizer = parts.trainer.build_optimizer(parts.job, parts.job.callbacks)
    assert optimizer.gradient_accumulation_steps == 4
    assert optimizer.use_ema and optimizer.ema_momentum**4 == pytest.approx(0.9)  # the ema callback's, per update
    ratio = cfg.data.batch_size * 4 / cfg.hardware.reference_batch_size
    assert ratio != 1
    assert float(optimizer.learning_rate) == pytest.approx(cfg.optimizer.learning_rate * ratio)


@pytest.mark.parametrize("value", [0, -2, 1.5])
def test_accumulate_steps_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match=f"trainer.accumulate_steps={value}: must be a positive integer"):
        validate_config(compose_config([f"trainer.accumulate_steps={value}"]))
