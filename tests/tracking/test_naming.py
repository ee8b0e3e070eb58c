"""Run names: short, and apart within a sweep at the runs table's default width."""

from __future__ import annotations

from animalseg.tracking.naming import MAX_NAME, parent_name, run_name, swept_keys

CHOICES = {"model": "unet", "experiment": None}


def test_a_sweep_job_is_named_by_the_values_of_the_swept_keys_only():
    overrides = ["data=voc", "data.root=/tmp/somewhere/long", "loss.boundary_weight=0.5", "optimizer=sgd"]
    swept = ["loss.boundary_weight", "optimizer"]
    assert run_name(CHOICES, overrides, swept) == "boundary_weight=0.5 optimizer=sgd"
    assert run_name({"experiment": "animals_cpu", "model": "unet_efficientnet"}, ["seed=2"], ["seed"]) == "seed=2"


def test_a_single_run_leaves_out_folders_plumbing_and_its_own_model_choice():
    overrides = ["model=attention_unet", "data.root=/data/x", "loss=focal", "logger.tracking_uri=sqlite:///m.db"]
    assert run_name({"model": "attention_unet"}, overrides) == "attention_unet loss=focal"
    assert run_name(CHOICES, []) == "unet"


def test_keys_that_share_a_last_part_keep_their_path_and_long_names_are_cut():
    overrides = ["loss.alpha=0.25", "mixup.alpha=0.2"]
    assert run_name(CHOICES, overrides) == "unet loss.alpha=0.25 mixup.alpha=0.2"
    long = run_name(CHOICES, [f"k{i}.value_{i}=0.123456" for i in range(9)])
    assert len(long) == MAX_NAME and long.endswith("…")


def test_swept_keys_come_from_the_command_line_and_the_sweepers_params():
    overrides = ["optimizer=adam,sgd", "loss.alpha=0.25", "seed=range(3)", "data.folds=3"]
    assert swept_keys(overrides, {"data.fold": "range(0,3)"}) == ["optimizer", "seed", "data.fold"]
    assert parent_name({"model": "unet"}, ["optimizer", "data.fold"]) == "unet sweep: optimizer, fold"


def test_the_comparison_names_the_loss_terms_and_their_settings():
    from animalseg.tracking.compare import _loss_columns

    params = {
        "loss.terms.focal._target_": "animalseg.losses.SparseFocalLoss",
        "loss.terms.focal.weight": "1.0",
        "loss.terms.focal.gamma": "2.0",
        "loss.terms.dice._target_": "animalseg.losses.SparseDiceLoss",
        "loss.terms.dice.weight": "0.5",
    }
    assert _loss_columns(params) == {"loss": "focal + 0.5 dice", "loss settings": "focal.gamma=2.0"}
    logged_before_terms = {"loss.semantic": "focal", "loss.alpha": "0.25", "loss.gamma": "2"}
    assert _loss_columns(logged_before_terms) == {"loss": "focal", "loss settings": "alpha=0.25 gamma=2"}
