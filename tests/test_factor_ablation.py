"""scripts/ablation.py: every row of the factor ablation is a valid train.py command that changes
one factor of the preset."""

from __future__ import annotations

import importlib.util

import pytest
from hydra.utils import instantiate

from animalseg.config import validate_config
from tests.helpers import ROOT, compose_config

spec = importlib.util.spec_from_file_location("ablation_script", ROOT / "scripts" / "ablation.py")
ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation)
ROWS = ablation.rows(12)


def _config(name):
    args = ablation.command(name, ROWS[name], 12, [])[2:]
    return compose_config([a for a in args if not a.startswith("hydra.")])


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_row_composes_and_validates(name):
    cfg = _config(name)
    validate_config(cfg)
    instantiate(cfg.augmentation)
    instantiate(cfg.schedule)(learning_rate=cfg.optimizer.learning_rate, steps_per_epoch=44)
    assert (cfg.trainer.epochs, cfg.logger.experiment_name, cfg.logger.run_name) == (12, "factor_ablation", name)


@pytest.mark.slow
def test_each_row_changes_what_it_says_and_nothing_else():
    preset = _config("preset")
    assert "ema" in preset.callbacks and list(preset.loss.terms) == ["ce"]
    assert _config("resolution_320").data.eval_size == 320 and _config("resolution_320").data.crop_size == 320
    assert list(_config("loss_ce_dice").loss.terms) == ["ce", "dice"]
    for loss_row in ("loss_focal", "loss_focal_a0.75_g3", "loss_focal_a0.25_g2", "loss_ce_dice"):
        assert _config(loss_row).loss.boundary_weight == preset.loss.boundary_weight == 0.3
    assert list(_config("schedule_warmup_step").schedule.milestones) == [6, 9]
    rotation = _config("augmentation_rotation").augmentation.ops
    assert [op.p for op in rotation] == [0.5, 0, 0]
    ema_off = _config("ema_off")
    assert "ema" not in ema_off.callbacks and _config("ema_0.99").callbacks.ema.momentum == 0.99
    assert {k: v for k, v in ema_off.items() if k != "callbacks"} == {
        k: v for k, v in preset.items() if k != "callbacks"
    } | {"logger": ema_off.logger}
    assert _config("encoder_bn_frozen").model.freeze_encoder_bn and not preset.model.freeze_encoder_bn
    weighting = {row: (_config(row).loss.class_weights, "class_weight_fade" in _config(row).callbacks) for row in ROWS}
    assert (weighting["preset"], weighting["class_weights_held"]) == (("auto_share", True), ("auto_share", False))
    assert weighting["class_weights_none"] == (None, False)
    assert _config("report_cpu_row").model.encoder == "EfficientNetLite0"
    assert _config("report_cpu_row").loss.terms.focal.alpha == 0.75  # the report's recipe, not the preset's


def test_another_experiment_keeps_its_rows_apart_from_the_first():
    args = ablation.command("preset", ROWS["preset"], 10, [], "factor_ablation_v2")
    assert "logger.experiment_name=factor_ablation_v2" in args
    assert "hydra.run.dir=outputs/factor_ablation_v2/preset" in args
    assert "hydra.run.dir=outputs/factor_ablation/preset" in ablation.command("preset", ROWS["preset"], 10, [])


def test_overrides_given_to_every_row_change_the_base_and_the_row_still_changes_its_factor():
    def config(name):
        args = ablation.command(name, ROWS[name], 12, ["model.encoder=EfficientNetLite0", "loss.boundary_weight=0"])[2:]
        return compose_config([a for a in args if not a.startswith("hydra.")])

    assert (config("preset").model.encoder, config("preset").loss.boundary_weight) == ("EfficientNetLite0", 0)
    assert config("encoder_lite1").model.encoder == "EfficientNetLite1"
    assert config("boundary_1.0").loss.boundary_weight == 1.0


def test_each_decoder_is_a_row_that_changes_only_the_decoder():
    for decoder in ("unet", "unetplusplus", "fpn", "deeplabv3plus"):
        assert ROWS[f"decoder_{decoder}"] == [f"model.decoder={decoder}"]
    assert _config("decoder_unet").model.decoder == "unet" and _config("preset").model.decoder == "fpn"
    assert _config("decoder_half").model.decoder_channels * 2 == _config("preset").model.decoder_channels
