"""Validation of a composed config: before any data is read or model built, and then against
the built model (what only the model knows, such as its output stride).

Every problem is one line that names the config key, what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from pathlib import Path
from typing import Protocol

from omegaconf import DictConfig, ListConfig, OmegaConf

from animalseg.data.dataset import MISSING_ROOT
from animalseg.errors import ConfigError
from animalseg.losses.settings import loss_setting_problems


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check(problems: list[str], cfg: DictConfig, key: str, ok: Callable[[object], bool], want: str) -> None:
    node, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, node) if node else cfg
    if parent is None or leaf not in parent:
        return
    value = parent[leaf]
    if not ok(value):
        problems.append(f"{key}={value!r}: must be {want}")


def run_data_value(run_config: DictConfig | None, key: str, default: object = None) -> object:
    """``data.<key>`` of the config a model was trained with, or ``default`` for a model saved
    outside a training run (no config beside it): evaluation, prediction and export take the data
    settings the run validated with."""
    if run_config is None:
        return default
    return run_config.data.get(key, default)


LR_SCALING_RULES = ("none", "linear", "sqrt")  # hardware.lr_scaling, see training/hardware.py
DECODERS = ("unet", "unetplusplus", "fpn", "deeplabv3plus")  # model.decoder, see models/decoders/


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing every problem found in ``cfg``."""
    problems: list[str] = []
    positive_int = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer")
    for key in (
        "data.crop_size",
        "data.batch_size",
        "data.eval_batch_size",
        "trainer.epochs",
        "trainer.accumulate_steps",
        "model.base_filters",
        "model.depth",
        "hardware.reference_batch_size",
    ):
        _check(problems, cfg, key, *positive_int)
    _check(problems, cfg, "seed", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
    for key, null in (
        ("data.eval_size", "null (native size)"),
        ("data.base_size", "null (native size)"),
        ("loss.class_weight_epochs", "null (held all run)"),
    ):
        _check(problems, cfg, key, lambda v: v is None or positive_int[0](v), f"{null} or a positive integer")
    rules = f"one of {', '.join(LR_SCALING_RULES)}"
    _check(problems, cfg, "hardware.lr_scaling", lambda v: v in LR_SCALING_RULES, rules)
    _check(problems, cfg, "optimizer.learning_rate", lambda v: _number(v) and v > 0, "a positive number")
    _check(problems, cfg, "optimizer.encoder_lr_multiplier", lambda v: _number(v) and v > 0, "a positive number")
    # 1 would keep the first step's weights for ever, 0 the current ones: neither is an average
    _check(problems, cfg, "optimizer.ema_momentum", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1), e.g. 0.99")
    _check(problems, cfg, "optimizer.ema_recompute_bn", lambda v: v in (True, False, "last"), "true, false or last")
    _check(problems, cfg, "loss.gamma", lambda v: _number(v) and v >= 0, "a number >= 0")
    for key in ("loss.boundary_weight", "loss.tversky_alpha", "loss.tversky_beta"):
        _check(problems, cfg, key, lambda v: _number(v) and v >= 0, "a number >= 0")
    _check(problems, cfg, "model.dropout", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)")
    _check(problems, cfg, "model.decoder", lambda v: v in DECODERS, f"one of {', '.join(DECODERS)}")
    _check(problems, cfg, "model.decoder_channels", positive_int[0], positive_int[1])
    _check(
        problems, cfg, "loss.alpha", _valid_alpha, "null, a number in [0, 1] or a list of per-class numbers in [0, 1]"
    )
    loss = cfg.get("loss")
    if loss is not None and "semantic" in loss:
        problems.extend(loss_setting_problems(str(loss.semantic), loss))
    _check(problems, cfg, "model.freeze_encoder_epochs", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
    _check(problems, cfg, "model.freeze_encoder_bn", lambda v: isinstance(v, bool), "true or false")
    _check(problems, cfg, "data.val_fraction", lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1")
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError([*problems, MISSING_ROOT])
    root = cfg.data.get("root")
    if root is not None and not Path(str(root)).expanduser().is_dir():
        problems.append(f"data.root={root}: folder not found (set data.root=/path/to/dataset)")
    if problems:
        raise ConfigError(problems)


class StridedModel(Protocol):
    """What the input check reads of a built model (a ``SegmentationModel``; the config layer
    names no model class, which imports it for the decoder names)."""

    output_stride: int


def check_model_input(cfg: DictConfig, model: StridedModel) -> None:
    """Raise ``ConfigError`` if the built ``model`` cannot take the sizes ``cfg`` feeds it.

    Training crops must be multiples of ``model.output_stride``. ``data.eval_size`` and
    ``data.base_size`` need not be: evaluation pads every image up to the stride, and training
    crops ``data.crop_size`` after resizing to ``data.base_size``.
    """
    stride, crop = model.output_stride, cfg.data.crop_size
    if crop % stride:
        raise ConfigError(
            [
                f"data.crop_size={crop}: must be divisible by {stride} (the output stride of model "
                f"{model.name}); e.g. data.crop_size={max(stride, crop // stride * stride)}"
            ]
        )


def _valid_alpha(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, ListConfig)):
        return len(value) > 0 and all(_number(v) and 0 <= v <= 1 for v in value)
    return _number(value) and 0 <= value <= 1
