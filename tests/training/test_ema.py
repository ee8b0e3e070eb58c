"""Weight EMA (callbacks=[default,ema]): the EMA weights are evaluated, checkpointed and reported, the
training weights train on undisturbed, and a resume or the unfreeze continues the same EMA."""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import pytest

from animalseg.build import build_run, instantiate_callbacks
from animalseg.errors import ConfigError
from animalseg.run import run
from animalseg.training.batchnorm import recompute_batchnorm, trained_batchnorm_layers
from animalseg.training.callbacks import TrainingCallback
from animalseg.training.evaluation import Evaluator
from animalseg.training.state import read_state
from tests.helpers import TINY, compose_config, tiny

pytestmark = pytest.mark.slow


class StepWeights(TrainingCallback):
    """Records the training weights after every step (class-level, the run builds its own)."""

    steps: ClassVar[list[list[np.ndarray]]] = []

    def on_train_batch_end(self, batch, logs=None):
        StepWeights.steps.append([np.array(v) for v in self.model.trainable_variables])


def _run(tmp_path, name, *extra):
    cfg = compose_config(
        [
            *TINY,
            "trainer.epochs=2",
            "trainer.deterministic=true",
            "~callbacks.mlflow",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"+callbacks.spy={{_target_: {__name__}.StepWeights}}",
            *extra,
        ]
    )
    StepWeights.steps = []
    metrics = run(cfg, run_dir=tmp_path / name)
    return cfg, metrics, StepWeights.steps


def test_the_ema_weights_are_evaluated_and_saved_and_training_runs_on_unchanged(tmp_path):
    momentum = 0.5
    _, _, plain_steps = _run(tmp_path, "plain")
    cfg, metrics, steps = _run(tmp_path, "ema", "callbacks=[default,ema]", f"callbacks.ema.momentum={momentum}")
    # the swap at every epoch end is undone exactly: the training weights follow the plain run
    for plain, ema in zip(plain_steps, steps, strict=True):
        for a, b in zip(plain, ema, strict=True):
            np.testing.assert_array_equal(a, b)
    # Keras's EMA: the first step copies the weights, then average = m x average + (1 - m) x weights
    expected = steps[0]
    for weights in steps[1:]:
        expected = [momentum * e + (1 - momentum) * w for e, w in zip(expected, weights, strict=True)]
    saved = keras.models.load_model(tmp_path / "ema" / "checkpoints" / "last.keras", compile=False)
    for e, s in zip(expected, saved.trainable_variables, strict=True):
        np.testing.assert_allclose(np.array(s), e, atol=1e-6)
    assert not all(np.array_equal(w, s) for w, s in zip(steps[-1], saved.trainable_variables, strict=True))
    # what the run reported is the evaluation of these saved EMA weights (the loss tells them apart)
    parts = build_run(cfg)
    data = parts.data
    result = Evaluator(
        data.dataset, "val", batch_size=data.eval_batch_size, num_examples=0, boundary_width=data.boundary_width
    ).evaluate(saved, parts.job.loss)
    for key, value in result.metrics().items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("when", ["true", "last"])  # after every epoch, or the final weights only
def test_recomputed_batchnorm_statistics_are_the_ema_weights_own_and_training_runs_on_unchanged(tmp_path, when):
    ema = ["callbacks=[default,ema]", "callbacks.ema.momentum=0.5"]
    _, _, raw_steps = _run(tmp_path, "raw_statistics", *ema)
    cfg, metrics, steps = _run(tmp_path, "recomputed", *ema, f"callbacks.ema.recompute_bn={when}")
    for raw, recomputed in zip(raw_steps, steps, strict=True):  # training never reads the statistics
        for a, b in zip(raw, recomputed, strict=True):
            np.testing.assert_array_equal(a, b)
    raw, saved = (
        keras.models.load_model(tmp_path / name / "checkpoints" / "last.keras", compile=False)
        for name in ("raw_statistics", "recomputed")
    )
    for a, b in zip(raw.trainable_variables, saved.trainable_variables, strict=True):  # the same EMA weights
        np.testing.assert_array_equal(np.array(a), np.array(b))
    # the saved statistics are those the EMA weights give on the last epoch's training batches
    parts = build_run(cfg)
    heads = (saved.semantic_head, saved.boundary_head)
    batches = parts.data.train_data(parts.job.augmentation, cfg.seed, heads, start_epoch=1)
    assert recompute_batchnorm(raw, batches.take(parts.data.steps_per_epoch)) == 16
    layers = list(zip(trained_batchnorm_layers(raw), trained_batchnorm_layers(saved), strict=True))
    assert layers
    for expected, actual in layers:
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(np.array(getattr(actual, name)), np.array(getattr(expected, name)), rtol=1e-5)
    # and what the run reported is these weights with these statistics
    data = parts.data
    result = Evaluator(
        data.dataset, "val", batch_size=data.eval_batch_size, num_examples=0, boundary_width=data.boundary_width
    ).evaluate(saved, parts.job.loss)
    assert metrics["val_miou"] == pytest.approx(result.metrics()["val_miou"], abs=1e-6)
    history = read_state(tmp_path / "recomputed" / "checkpoints").history
    recomputed_after = history if when == "true" else history[-1:]  # "last": the final weights only
    assert all(logs["ema_bn_seconds"] > 0 for logs in recomputed_after)
    assert all("ema_bn_seconds" not in logs for logs in history[: len(history) - len(recomputed_after)])


def _phase_run(tmp_path, name, epochs):
    overrides = [
        *tiny("unet"),  # the scratch encoder freezes as any encoder does, and builds in a fraction of the time
        "+model.freeze_encoder_epochs=1",
        "callbacks=[default,ema]",
        "callbacks.ema.momentum=0.9",
        "schedule=constant",  # so stopping after epoch 1 and raising trainer.epochs is a real interruption
        f"trainer.epochs={epochs}",
        "trainer.deterministic=true",
        "schedule=constant",  # a kill is simulated by raising trainer.epochs: the rate must not depend on it
        "~callbacks.mlflow",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    return run(compose_config(overrides), run_dir=tmp_path / name)


def test_a_resumed_run_across_the_unfreeze_continues_the_same_ema(tmp_path):
    straight = _phase_run(tmp_path, "straight", 2)
    _phase_run(tmp_path, "resumed", 1)  # stops after the frozen epoch, then resumes into the unfrozen one
    resumed = _phase_run(tmp_path, "resumed", 2)
    assert resumed["val_miou"] == pytest.approx(straight["val_miou"], abs=1e-6)
    history = [read_state(tmp_path / name / "checkpoints").history for name in ("straight", "resumed")]
    assert [h["loss"] for h in history[1]] == pytest.approx([h["loss"] for h in history[0]], abs=1e-6)
    weights = [
        keras.models.load_model(tmp_path / name / "checkpoints" / "last.keras", compile=False).get_weights()
        for name in ("straight", "resumed")
    ]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_ema_callback_asks_the_optimizer_for_its_average():
    (ema,) = [c for c in instantiate_callbacks(compose_config([*TINY, "callbacks=[default,ema]"])) if c.name == "ema"]
    assert ema.optimizer_arguments() == {"use_ema": True, "ema_momentum": 0.99}
    assert "ema" not in [c.name for c in instantiate_callbacks(compose_config(TINY))]
    with pytest.raises(ConfigError, match=r"callbacks.ema.recompute_bn='sometimes': must be true, false or last"):
        instantiate_callbacks(
            compose_config([*TINY, "callbacks=[default,ema]", "callbacks.ema.recompute_bn=sometimes"])
        )


def test_recomputing_for_the_final_weights_only_skips_the_earlier_epochs(monkeypatch):
    import animalseg.training.callbacks.ema as ema_module
    from animalseg.training.callbacks import EmaWeights

    recomputed = []
    monkeypatch.setattr(ema_module, "recompute_batchnorm", lambda model, batches: recomputed.append(batches))
    callback = EmaWeights(recompute_bn="last")
    callback.context = type("Context", (), {"epochs": 3, "training_batches": lambda self, epoch: epoch})()
    callback._swap = lambda: setattr(callback, "ema_in_model", not callback.ema_in_model)
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {})
    assert recomputed == [2]
    with pytest.raises(ValueError, match="recompute_bn='first': must be true, false or last"):
        EmaWeights(recompute_bn="first")
