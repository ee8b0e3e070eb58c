"""What the tests share: the project's folders, tiny overrides, composing the config as train.py
does (the compose API), the subprocess command and environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from animalseg.paths import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
ANIMALS = ROOT.parent / "shared" / "datasets" / "animals"
# Small enough for a CPU test in seconds: 8-filter U-Net on 32 px synthetic images.
TINY_MODELS = {
    "unet": ["model.base_filters=4"],
    "attention_unet": ["model.base_filters=4"],
    "unet_efficientnet": [
        "model.encoder=EfficientNetLite0",
        "model.encoder_weights=null",
        "model.decoder_filters=[16,8,8,8,4]",
    ],
}
# debug=tiny (conf/debug/tiny.yaml, what users try a change with): one epoch of 32 px crops in
# batches of 4, without the MLflow Model (seconds per run of packaging code and environment; the
# tests of the shipped model turn it back on with logger.log_model=true).
TINY_PARTS = ["model.base_filters=4", "debug=tiny"]
SMALL_SYNTHETIC = ["data.dataset.image_size=32", "data.dataset.train_size=16", "data.dataset.val_size=8"]
TINY = TINY_PARTS + SMALL_SYNTHETIC

register_resolvers()


def tiny(model: str = "unet", synthetic: bool = True) -> list[str]:
    """Overrides for a seconds-long run of ``model`` (crop 32, or 64 for stride-32 encoders)."""
    crop = 64 if model == "unet_efficientnet" else 32
    return [
        f"model={model}",
        *TINY_MODELS[model],
        "debug=tiny",
        f"data.crop_size={crop}",
        *(SMALL_SYNTHETIC if synthetic else []),
    ] + (["data.dataset.image_size=64"] if synthetic and crop == 64 else [])


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The training config as ``python train.py <overrides>`` would compose it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [])


def train_command(run_dir: Path, uri: str, *overrides: str) -> list[str]:
    """``python train.py <overrides>`` into ``run_dir``, logging to the MLflow store ``uri``."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        *overrides,
        f"hydra.run.dir={run_dir}",
        f"logger.tracking_uri={uri}",
    ]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess run, without TensorFlow's C++ log lines."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


requires_animals = pytest.mark.skipif(not ANIMALS.is_dir(), reason=f"{ANIMALS} is absent")
