"""A frozen encoder's two phases: one optimizer throughout, no rollback at the boundary, and a
resume at the boundary that ends exactly as the uninterrupted run (issue 14, items 3 and 4)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from animalseg.run import run
from animalseg.training.state import read_state
from tests.helpers import compose_config, tiny

pytestmark = pytest.mark.slow


def overrides(tracking_uri: str, *extra: str) -> list[str]:
    return [
        *tiny("unet"),  # the scratch encoder freezes as any encoder does, and builds in a fraction of the time
        "+model.freeze_encoder_epochs=2",
        "trainer.deterministic=true",
        "schedule=constant",  # a kill is simulated by raising trainer.epochs: the rate must not depend on it
        "~callbacks.mlflow",
        f"logger.tracking_uri={tracking_uri}",
        *extra,
    ]


def final_weights(run_dir) -> list[np.ndarray]:
    return keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False).get_weights()


def test_a_resume_right_after_the_frozen_phase_ends_as_the_uninterrupted_run(tmp_path, tracking_uri):
    # a constant rate: stopping after 2 epochs then raising trainer.epochs is then a real interruption
    run(compose_config(overrides(tracking_uri, "trainer.epochs=3", "schedule=constant")), run_dir=tmp_path / "straight")
    # a run killed during epoch 3 resumes from the state of epoch 2, the last frozen one
    run(compose_config(overrides(tracking_uri, "trainer.epochs=2", "schedule=constant")), run_dir=tmp_path / "resumed")
    run(compose_config(overrides(tracking_uri, "trainer.epochs=3", "schedule=constant")), run_dir=tmp_path / "resumed")
    straight, resumed = (
        read_state(tmp_path / "straight" / "checkpoints"),
        read_state(tmp_path / "resumed" / "checkpoints"),
    )
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], abs=1e-6)
    for a, b in zip(final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed"), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_early_stopping_does_not_roll_back_at_the_unfreeze(tmp_path, tracking_uri):
    # monitoring val_loss as "higher is better" makes epoch 1 the best: a rollback would show
    plain = overrides(tracking_uri, "trainer.epochs=3", "trainer.monitor=val_loss")
    run(compose_config(plain), run_dir=tmp_path / "plain")
    stopping = [*plain, "callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=10"]
    run(compose_config(stopping), run_dir=tmp_path / "stopping")
    plain_losses = [h["loss"] for h in read_state(tmp_path / "plain" / "checkpoints").history]
    stopping_losses = [h["loss"] for h in read_state(tmp_path / "stopping" / "checkpoints").history]
    assert stopping_losses == pytest.approx(plain_losses, abs=1e-6)


def test_plateau_reductions_survive_the_unfreeze(tmp_path, tracking_uri):
    # nothing improves by 1e9: the rate halves after every epoch from the second on, the
    # reduction after epoch 2 (the last frozen one) included
    settings = ["schedule=plateau", "schedule.patience=0", "schedule.min_delta=1e9", "optimizer.learning_rate=0.001"]
    run(compose_config(overrides(tracking_uri, "trainer.epochs=4", *settings)), run_dir=tmp_path / "plateau")
    rates = [h["lr"] for h in read_state(tmp_path / "plateau" / "checkpoints").history]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
