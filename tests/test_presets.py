"""The animals presets compose, build every part they list and train at tiny scale on the CPU.

What their hyper-parameters are is the presets' own business (docs/results); these tests check
that a preset stays a working run, so tuning one edits its YAML and no test."""

from __future__ import annotations

import pytest

from animalseg.build import build_loss, build_trainer, instantiate_callbacks
from animalseg.config import validate_config
from animalseg.run import run
from tests.helpers import CONF, compose_config

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("animals_*.yaml"))
# the preset at the scale of seconds: synthetic 64 px images, an encoder without its download
TINY_SCALE = [
    "data=synthetic",
    "data.dataset.image_size=64",
    "data.dataset.train_size=8",
    "data.dataset.val_size=4",
    "data.crop_size=64",
    "data.base_size=64",
    "data.eval_size=64",
    "data.batch_size=4",
    "model.encoder_weights=null",
    "model.decoder_filters=[16,8,8,8,4]",
    "trainer.epochs=2",
    "~callbacks.mlflow",
]


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_composes_and_builds_what_it_lists(preset):
    cfg = compose_config([f"experiment={preset}"])
    validate_config(cfg)
    callbacks = {c.name: c for c in instantiate_callbacks(cfg)}
    assert {"evaluation", "checkpoint"} <= set(callbacks)
    setting = cfg.loss.class_weights  # counted from the images in a run; ones stand in here
    loss = build_loss(cfg.loss, ignore_index=255, class_weights=None if setting is None else [1.0] * 7)
    if "class_weight_fade" in callbacks:  # a fade needs a term that weights classes
        assert loss.class_weighted()
    build_trainer(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_trains_on_the_cpu_at_tiny_scale(preset, tmp_path):
    """The GPU preset in float16 as on the GPU: its EMA inside the loss-scale optimizer."""
    gpu = ["hardware=cpu", "hardware.precision=mixed_float16"] if preset == "animals_gpu" else []
    cfg = compose_config(
        [f"experiment={preset}", *gpu, *TINY_SCALE, f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert 0.0 <= metrics["val_miou"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()
