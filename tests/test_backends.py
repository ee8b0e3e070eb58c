"""The package runs unchanged on the JAX backend (when jax is installed)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY

pytest.importorskip("jax")


@pytest.mark.slow
def test_tiny_training_on_the_jax_backend(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *TINY,
            "trainer.epochs=2",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished: best val_miou" in result.stdout
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()
