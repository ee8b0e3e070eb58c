"""One set of final weights per run: when early stopping restores the best epoch, its weights are
the ones the val and test figures, ``last.keras``, the logged MLflow Model and the run's tag
describe, and the run says which they are."""

from __future__ import annotations

from typing import ClassVar

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from animalseg.build import build_run
from animalseg.run import run
from animalseg.training.callbacks import Stage, TrainingCallback
from animalseg.training.evaluation import Evaluator
from animalseg.training.state import read_state, save_state
from tests.helpers import TINY, compose_config

pytestmark = pytest.mark.slow

RESTORED = "best epoch 1 (restored by early stopping after epoch 2)"


class EpochScore(TrainingCallback):
    """A score that makes epoch 1 the best for certain, and the weights of every epoch's end."""

    stage = Stage.MEASURE  # before the checkpoint and early stopping read it
    provides = ("epoch_score",)
    weights: ClassVar[list[list[np.ndarray]]] = []

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_score"] = 1.0 if epoch == 0 else 0.0
        EpochScore.weights.append(self.model.get_weights())


def assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def scores(model: keras.Model, cfg, split: str) -> dict[str, float]:
    parts = build_run(cfg)
    data = parts.data
    evaluator = Evaluator(
        data.dataset, split, batch_size=data.eval_batch_size, num_examples=0, boundary_width=data.boundary_width
    )
    return evaluator.evaluate(model, parts.job.loss).metrics(f"{split}_")


def test_the_restored_weights_are_the_runs_final_weights_in_every_figure(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_config(
        [
            *TINY,
            "data.dataset.test_size=4",
            "trainer.epochs=2",
            "logger.log_model=true",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=final",
            f"+callbacks.score={{_target_: {__name__}.EpochScore}}",
            "callbacks.checkpoint.monitor=epoch_score",  # best.keras is epoch 1 too (read after a resume)
            "callbacks=[default,early_stopping]",
            "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.monitor=epoch_score",
        ]
    )
    EpochScore.weights = []
    run_dir = tmp_path / "run"
    metrics = run(cfg, run_dir=run_dir)
    first, last = EpochScore.weights
    assert not all(np.array_equal(a, b) for a, b in zip(first, last, strict=True))  # the epochs differ

    checkpoint = keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    assert_same_weights(checkpoint.get_weights(), first)
    client = MlflowClient(uri)
    logged = client.search_runs([client.get_experiment_by_name("final").experiment_id])[0]
    run_id = logged.info.run_id
    artifact = client.download_artifacts(run_id, "checkpoints/last.keras", str(tmp_path / "download"))
    assert_same_weights(keras.models.load_model(artifact, compile=False).get_weights(), first)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").unwrap_python_model().model
    assert_same_weights(model.get_weights(), first)

    val, test = scores(checkpoint, cfg, "val"), scores(checkpoint, cfg, "test")
    for key in ("val_miou", "val_pixel_accuracy", "val_loss"):
        assert metrics[key] == pytest.approx(val[key], abs=1e-6), key
        assert logged.data.metrics[key] == pytest.approx(val[key], abs=1e-6), key  # the run's latest value
    assert logged.data.metrics["test_miou"] == pytest.approx(test["test_miou"], abs=1e-6)
    assert logged.data.tags["final_weights"] == RESTORED
    out = capsys.readouterr().out
    assert f"with the final weights = {RESTORED}" in out and f"(final weights = {RESTORED}; scored once)" in out

    # killed while reporting: the same command restores the same weights (from best.keras) again
    state = read_state(run_dir / "checkpoints")
    state.reported = False
    save_state(run_dir / "checkpoints", state)
    again = run(cfg, run_dir=run_dir)
    assert_same_weights(
        keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False).get_weights(), first
    )
    assert again["val_miou"] == pytest.approx(metrics["val_miou"], abs=1e-6)
    assert f"with the final weights = {RESTORED}" in capsys.readouterr().out
    # and once reported, started again it says which weights its figures are
    assert run(cfg, run_dir=run_dir) == pytest.approx(metrics, nan_ok=True)
    assert f"final weights = {RESTORED}); nothing to do" in capsys.readouterr().out
