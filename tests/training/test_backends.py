"""The package runs unchanged on the JAX backend (when jax is installed), on one device and
data-parallel over two (keras.distribution.DataParallel, hardware=multi_gpu)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import ROOT, TINY

# not imported here: the test process never loads JAX (its garbage-collection hook would run in
# a pytest-xdist worker being shut down); the run itself is a subprocess
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")


def _train_on_jax(run_dir, uri, *extra: str) -> list[dict]:
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",  # two CPU devices for DataParallel
    }
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        *TINY,
        "data.dataset.val_size=7",  # a last eval batch that does not split evenly over two devices
        "hardware.jit_compile=true",
        f"hydra.run.dir={run_dir}",
        f"logger.tracking_uri={uri}",
        *extra,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished: val_miou" in result.stdout
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())["history"]


@pytest.mark.slow
def test_tiny_training_on_jax_alone_and_data_parallel_agree(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    single = _train_on_jax(tmp_path / "single", uri)
    parallel = _train_on_jax(
        tmp_path / "parallel", uri, "hardware=multi_gpu", "hardware.precision=float32", "hardware.lr_scaling=none"
    )
    client = MlflowClient(uri)
    replicas = {
        Path(run.data.tags["run_dir"]).name: run.data.params["hardware.replicas"]
        for run in client.search_runs([client.get_experiment_by_name("animalseg").experiment_id])
    }
    assert replicas == {"single": "1", "parallel": "2"}
    for one, two in zip(single, parallel, strict=True):
        for key in ("loss", "val_loss", "val_miou"):
            assert two[key] == pytest.approx(one[key], rel=1e-4), key


def _encoder_and_rest(checkpoint: Path) -> tuple[list, list]:
    import keras

    import animalseg.models  # noqa: F401  (registers the classes a checkpoint names)

    model = keras.models.load_model(checkpoint, compile=False)
    rest = [w for layer in model.layers if layer is not model.encoder for w in layer.get_weights()]
    return model.encoder.get_weights(), rest


@pytest.mark.slow
def test_a_frozen_encoder_trains_and_resumes_across_the_unfreeze_on_jax(tmp_path):
    """One optimizer over both phases on JAX as on TensorFlow (tests/training/test_phases.py): the
    encoder stays put while frozen, and a run resumed in the frozen phase ends as the straight run."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    phases = ["+model.freeze_encoder_epochs=2", "trainer.deterministic=true", "schedule=constant"]
    phases += ["callbacks=[default,ema]", "callbacks.ema.momentum=0.5", "hardware.jit_compile=false"]
    straight = _train_on_jax(tmp_path / "straight", uri, *phases, "trainer.epochs=3")
    legs = []
    for epochs in (1, 2, 3):  # killed after epoch 1, after epoch 2 (the last frozen one), then finished
        resumed = _train_on_jax(tmp_path / "resumed", uri, *phases, f"trainer.epochs={epochs}")
        legs.append(_encoder_and_rest(tmp_path / "resumed" / "checkpoints" / "last.keras"))
    (encoder_1, rest_1), (encoder_2, rest_2), (encoder_3, _) = legs
    for a, b in zip(encoder_1, encoder_2, strict=True):
        np.testing.assert_array_equal(a, b)  # frozen
    assert any(not np.array_equal(a, b) for a, b in zip(rest_1, rest_2, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(encoder_2, encoder_3, strict=True))  # unfrozen
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in straight], abs=1e-5)
    straight_encoder, _ = _encoder_and_rest(tmp_path / "straight" / "checkpoints" / "last.keras")
    for a, b in zip(straight_encoder, encoder_3, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
