"""Validation of a composed config: before any data is read or model built, and then against
the built model (what only the model knows, such as its output stride).

Every problem is one line that names the config key, what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from omegaconf import DictConfig, OmegaConf

from animalseg.data.crops import crop_schedule_problem
from animalseg.data.dataset import MISSING_ROOT
from animalseg.errors import ConfigError
from animalseg.numbers import is_number


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


# Keys whose setting lives elsewhere now → where, as a user types it. A config or command line that
# still sets one gets one line naming the new place (tests/test_configs.py composes each).
MOVED_KEYS: dict[str, str] = {
    "loss.semantic": "choose the loss's terms with loss=<option> (ce, focal, dice, tversky, focal_dice, focal_tversky) "
    "or several: 'loss=[focal,dice]'",
    "loss.semantic_weights": "set each term's weight: loss.terms.<name>.weight",
    "loss.alpha": "loss.terms.focal.alpha (with loss=focal)",
    "loss.gamma": "loss.terms.focal.gamma (with loss=focal)",
    "loss.tversky_alpha": "loss.terms.tversky.alpha (with loss=tversky)",
    "loss.tversky_beta": "loss.terms.tversky.beta (with loss=tversky)",
    "loss.class_weight_epochs": "the fade is a callback: add it with 'callbacks=[default,class_weight_fade]' "
    "callbacks.class_weight_fade.epochs=N, drop a preset's with '~callbacks.class_weight_fade'",
    "optimizer.use_ema": "the EMA is a callback: add it with 'callbacks=[default,ema]', drop a preset's with "
    "'~callbacks.ema'",
    "optimizer.ema_momentum": "callbacks.ema.momentum (with 'callbacks=[default,ema]')",
    "optimizer.ema_recompute_bn": "callbacks.ema.recompute_bn (with 'callbacks=[default,ema]')",
    "trainer.early_stopping": "early stopping is a callback: add it with 'callbacks=[default,early_stopping]' "
    "callbacks.early_stopping.patience=N",
    "trainer.num_examples": "callbacks.evaluation.num_examples",
}


def flat_keys(cfg: DictConfig) -> list[str]:
    """Every dotted key of ``cfg`` down to the groups' own keys (no value is resolved)."""
    keys = []
    for group, node in cfg.items():
        keys.append(str(group))
        if isinstance(node, DictConfig):
            keys.extend(f"{group}.{key}" for key in node)
    return keys


def moved_key_problems(keys: Iterable[str]) -> list[str]:
    """One line per key in ``keys`` (dotted, as typed: ``loss.alpha``, ``+loss.alpha`` or a key
    inside a moved one, ``trainer.early_stopping.patience``) that has moved, naming where its
    setting lives now."""
    problems = []
    for key in keys:
        bare = key.lstrip("+~")
        moved = next((old for old in MOVED_KEYS if bare == old or bare.startswith(f"{old}.")), None)
        if moved is not None:
            problems.append(f"{bare} has moved: {MOVED_KEYS[moved]}")
    return problems


LR_SCALING_RULES = ("none", "linear", "sqrt")  # hardware.lr_scaling, see training/hardware.py


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing every problem found in ``cfg``."""
    problems: list[str] = moved_key_problems(flat_keys(cfg))
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
    for key, null in (("data.eval_size", "null (native size)"), ("data.base_size", "null (native size)")):
        _check(problems, cfg, key, lambda v: v is None or positive_int[0](v), f"{null} or a positive integer")
    rules = f"one of {', '.join(LR_SCALING_RULES)}"
    _check(problems, cfg, "hardware.lr_scaling", lambda v: v in LR_SCALING_RULES, rules)
    _check(problems, cfg, "optimizer.learning_rate", lambda v: is_number(v) and v > 0, "a positive number")
    _check(problems, cfg, "optimizer.encoder_lr_multiplier", lambda v: is_number(v) and v > 0, "a positive number")
    _check(problems, cfg, "model.dropout", lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)")
    _check(problems, cfg, "model.decoder_channels", positive_int[0], positive_int[1])
    _check(problems, cfg, "model.freeze_encoder_bn", lambda v: isinstance(v, bool), "true or false")
    schedule = OmegaConf.select(cfg, "data.crop_schedule")
    if schedule is not None:
        plain = OmegaConf.to_container(schedule, resolve=True) if OmegaConf.is_config(schedule) else schedule
        if (problem := crop_schedule_problem(plain)) is not None:
            problems.append(f"data.crop_schedule={plain}: {problem}")
    _check(problems, cfg, "data.val_fraction", lambda v: is_number(v) and 0 < v < 1, "a number between 0 and 1")
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
    schedule = cfg.data.get("crop_schedule") or []
    if any(side % stride for _, side in schedule):
        fixed = ",".join(f"[{epoch},{max(stride, side // stride * stride)}]" for epoch, side in schedule)
        raise ConfigError(
            f"data.crop_schedule={[[epoch, side] for epoch, side in schedule]}: every crop side must be divisible "
            f"by {stride} (the output stride of model {model.name}); e.g. 'data.crop_schedule=[{fixed}]'"
        )
