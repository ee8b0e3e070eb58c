"""The animals presets: their recipe, and the GPU one trained for an epoch on the CPU at tiny scale."""

from __future__ import annotations

import pytest

from animalseg.config import validate_config
from animalseg.run import run
from tests.helpers import compose_config


def test_the_cpu_preset_is_the_recipe():
    cfg = compose_config(["experiment=animals_cpu"])
    validate_config(cfg)
    assert (cfg.model.encoder, cfg.model.encoder_weights) == ("EfficientNetLite1", "imagenet")
    assert (cfg.data.crop_size, cfg.data.base_size, cfg.data.eval_size, cfg.data.batch_size) == (224, 224, 224, 16)
    assert (cfg.loss.semantic, cfg.loss.boundary_weight, cfg.augmentation.get("ops")) == ("ce", 0.3, None)
    assert (cfg.loss.class_weights, cfg.loss.class_weight_epochs) == ("auto_share", 6)  # the recipe as measured
    assert (cfg.optimizer.learning_rate, cfg.optimizer.use_ema, cfg.optimizer.ema_momentum) == (1e-3, True, 0.95)
    assert (cfg.schedule._target_.rpartition(".")[2], cfg.schedule.warmup_epochs) == ("cosine", 1)
    assert (cfg.trainer.epochs, cfg.hardware.precision) == (30, "float32")


def test_the_gpu_preset_is_the_recipe_at_full_resolution():
    cfg = compose_config(["experiment=animals_gpu"])
    assert (cfg.model.encoder, cfg.data.crop_size, cfg.data.eval_size, cfg.data.batch_size) == (
        "EfficientNetLite2",
        512,
        512,
        16,
    )
    assert (cfg.hardware.precision, cfg.trainer.epochs) == ("mixed_float16", 40)
    assert (cfg.loss.class_weight_epochs, cfg.optimizer.use_ema) == (6, True)  # the CPU preset's fade and EMA


@pytest.mark.slow
def test_the_gpu_preset_trains_on_the_cpu_at_tiny_scale(tmp_path):
    """float16 as on the GPU, on synthetic 64 px images: the EMA inside the loss-scale optimizer,
    the class weights fading over the two epochs."""
    cfg = compose_config(
        [
            "experiment=animals_gpu",
            "hardware=cpu",
            "hardware.precision=mixed_float16",
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
            "loss.class_weight_epochs=2",
            "trainer.verbose=0",
            "~callbacks.mlflow",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        ]
    )
    metrics = run(cfg, run_dir=tmp_path / "run")
    assert 0.0 <= metrics["val_miou"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()
