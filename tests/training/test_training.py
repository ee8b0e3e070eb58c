"""End-to-end: a tiny training logs a complete MLflow run whose checkpoint loads and predicts."""

import os
import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from animalseg.run import run
from animalseg.tracking.sections import class_iou_key
from animalseg.training.state import read_state
from tests.helpers import ROOT, TINY, compose_config

CLASSES = ["background", "disc", "square", "triangle", "diamond", "ring", "cross"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = compose_config(
        [
            *TINY,
            "trainer.epochs=2",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=e2e",
            "loss.boundary_weight=0.3",
        ]
    )
    metrics = run(cfg, run_dir=tmp / "out")
    mlflow.set_tracking_uri(uri)
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("e2e").experiment_id])
    return tmp, metrics, runs


@pytest.mark.slow
def test_run_is_logged_finished_with_params_and_metrics(trained):
    _, metrics, runs = trained
    assert len(runs) == 1
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    params = logged.data.params
    assert params["loss.boundary_weight"] == "0.3"
    assert params["model.base_filters"] == "4"
    assert params["data.crop_size"] == "32"
    assert "optimizer.learning_rate" in params and "seed" in params
    for name in ["val_miou", "val_pixel_accuracy", "loss", "val_loss", "lr", *[class_iou_key(c) for c in CLASSES]]:
        assert name in logged.data.metrics, name
    history = MlflowClient(mlflow.get_tracking_uri()).get_metric_history(logged.info.run_id, "val_miou")
    assert [m.step for m in history] == [1, 2]
    assert 0.0 <= metrics["val_miou"] <= 1.0
    for c in CLASSES:  # every class, every epoch: NaN where val could not score it, never an earlier epoch's figure
        assert logged.data.metrics[class_iou_key(c)] == pytest.approx(metrics[f"val_iou_{c}"], nan_ok=True), c
    scored = [c for c in CLASSES if not np.isnan(logged.data.metrics[class_iou_key(c)])]
    assert "background" in scored and len(scored) >= 2


def test_artifacts_and_checkpoint_round_trip(trained):
    tmp, _, runs = trained
    client = MlflowClient(mlflow.get_tracking_uri())
    run_id = runs[0].info.run_id
    names = {a.path for folder in ("plots", "config", "checkpoints") for a in client.list_artifacts(run_id, folder)}
    assert {
        "plots/curves.png",
        "plots/class_iou.png",
        "plots/confusion_matrix.png",
        "plots/val_examples.png",
        "config/config.yaml",
        "config/overrides.txt",
        "checkpoints/best.keras",
    } <= names
    local = client.download_artifacts(run_id, "checkpoints/best.keras", str(tmp / "download"))
    model = keras.models.load_model(local)
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 32, 3)).astype("float32")
    outputs = model.predict(images, verbose=0)
    assert outputs["sem_logits"].shape == (2, 48, 32, 7)
    assert outputs["boundary_logits"].shape == (2, 48, 32, 1)
    again = keras.models.load_model(tmp / "out" / "checkpoints" / "best.keras").predict(images, verbose=0)
    np.testing.assert_array_equal(outputs["sem_logits"], again["sem_logits"])


def _train_cli(*overrides, cwd=ROOT, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_bad_config_is_one_line_without_traceback(tmp_path):
    result = _train_cli(
        "data.crop_size=50", f"hydra.run.dir={tmp_path}", f"logger.tracking_uri=sqlite:///{tmp_path}/m.db"
    )
    assert result.returncode == 2
    assert "error: data.crop_size=50: must be divisible by 16" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.db").exists()


@pytest.mark.slow
def test_cli_trains_and_prints_where_outputs_are(tmp_path):
    result = _train_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}", f"logger.tracking_uri=sqlite:///{tmp_path}/m.db")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()


def test_a_crop_schedule_trains_on_growing_crops_and_resumes_to_the_same_result(tmp_path):
    def train(name: str, epochs: int) -> dict:
        overrides = [
            *TINY,
            "data.dataset.image_size=48",
            "data.crop_schedule=[[1,48]]",  # 32 px crops in epoch 0, 48 px from epoch 1
            "trainer.deterministic=true",
            "schedule=constant",  # so stopping after epoch 0 and raising trainer.epochs is a real interruption
            f"trainer.epochs={epochs}",
            "~callbacks.mlflow",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        ]
        return run(compose_config(overrides), run_dir=tmp_path / name)

    straight = train("straight", 2)
    train("resumed", 1)
    resumed = train("resumed", 2)
    assert resumed["val_miou"] == pytest.approx(straight["val_miou"], abs=1e-6)
    histories = [read_state(tmp_path / name / "checkpoints").history for name in ("straight", "resumed")]
    losses = [[logs["loss"] for logs in history] for history in histories]
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], abs=1e-6)
