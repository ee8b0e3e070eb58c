"""The command line answers before TensorFlow loads (help, a config error), prints the app's own
help, leaves nothing behind when it fails before training, and keeps library noise off a run's
console."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from animalseg.training.callbacks import LearningRateLogger
from animalseg.training.callbacks.monitoring import epoch_line
from tests.helpers import CONF, ROOT, TINY

# What a default CPU run must not print: TensorFlow's and absl's C++ lines, the CUDA probe,
# MLflow's INFO lines and its known-harmless warnings.
NOISE = (
    "absl",
    "cuda",
    "cuInit",
    "oneDNN",
    "TF_ENABLE",
    "UserWarning",
    "INFO mlflow",
    "WARNING mlflow",
    "FutureWarning",
    "CloudPickle",
)


def _command(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -X importtime <script> <args>`` in a clean environment (no TF_CPP_MIN_LOG_LEVEL)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ANIMALSEG_VERBOSE")}
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / script), *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _imported(stderr: str) -> set[str]:
    """Top-level packages ``-X importtime`` says were imported."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    return {line.split("|")[-1].strip().split(".")[0] for line in lines}


def _user_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "predict.py"])
def test_help_is_the_apps_own_and_loads_no_heavy_library(script):
    result = _command(script, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"{script}: ")
    assert "== Examples ==" in result.stdout and "powered by Hydra" not in result.stdout
    assert "model: attention_unet, unet, unet_efficientnet" in result.stdout or script != "train.py"
    template = (CONF / "hydra" / "help" / script.replace(".py", ".yaml")).read_text()
    examples = [line for line in template.splitlines() if line.startswith(f"    python {script}")]
    shown = [line for line in result.stdout.splitlines() if line.startswith(f"  python {script}")]
    assert len(shown) == len(examples) >= 5  # every example of the template, rendered
    assert not _imported(result.stderr) & {"tensorflow", "keras", "mlflow"}


def test_a_config_error_is_one_line_before_tensorflow_loads_and_leaves_no_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    result = _command("train.py", "trainer.epochs=0", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert _user_lines(result.stderr) == ["error: trainer.epochs=0: must be a positive integer"]
    assert not _imported(result.stderr) & {"tensorflow", "keras", "mlflow"}
    assert not run_dir.exists()


def test_the_composed_config_prints_without_tensorflow():
    result = _command("train.py", "--cfg", "job", "model=attention_unet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "_target_: animalseg.models.unet.AttentionUNet" in result.stdout
    assert not _imported(result.stderr) & {"tensorflow", "keras", "mlflow"}


@pytest.mark.slow
def test_a_default_run_prints_no_library_lines_and_ends_with_its_summary(tmp_path):
    result = _command(
        "train.py",
        *TINY,
        "trainer.epochs=2",
        "logger.log_model=true",  # the default: packaging the MLflow Model prints nothing either
        f"hydra.run.dir={tmp_path / 'run'}",
        f"logger.tracking_uri=sqlite:///{tmp_path}/m.db",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [*result.stdout.splitlines(), *_user_lines(result.stderr)]
    assert not [line for line in printed if any(word in line for word in NOISE)], printed
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("val_miou" in line and " lr " in line for line in epochs)
    assert "Finished: val_miou" in result.stdout
    assert "#/experiments/" in result.stdout and "/runs/" in result.stdout


def test_the_epoch_line_is_short_and_names_the_lowest_scored_class():
    logs = {
        "loss": 0.41234,
        "val_miou": 0.8123,
        "val_iou_lion": 0.70119,
        "val_iou_fox": 0.9,
        "val_iou_wolf": float("nan"),  # not in the split: not "the lowest"
        "val_loss": 0.5,
        "lr": 0.00095,
        "epoch_seconds": 41.2,
    }
    assert epoch_line(3, 30, logs) == "epoch  3/30  loss 0.4123  val_miou 0.8123  lowest lion 0.7012  lr 9.50e-04  41 s"


def test_the_logged_rate_is_the_one_the_epochs_steps_trained_with():
    """A warm-up from 0: the epoch's first step trains at 0, the next ones do not."""
    peak, steps = 1e-2, 4
    schedule = keras.optimizers.schedules.PolynomialDecay(0.0, steps, end_learning_rate=peak, power=1.0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    logger = LearningRateLogger()
    history = model.fit(
        np.zeros((steps * 2, 2)), np.zeros((steps * 2, 1)), batch_size=2, epochs=1, callbacks=[logger], verbose=0
    )
    expected = np.mean([float(schedule(step)) for step in range(steps)])
    np.testing.assert_allclose(history.history["lr"][0], expected, rtol=1e-6)
    assert expected > 0
