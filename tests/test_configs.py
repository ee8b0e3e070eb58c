"""Every option of every config group composes and instantiates."""

import keras
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from animalseg.augment import Augmentation
from animalseg.build import build_loss, build_node, build_trainer, instantiate_callbacks, instantiate_optimizer
from animalseg.config import check_model_input, moved_key_problems, validate_config
from animalseg.data.convert import write_layout
from animalseg.data.module import DataModule
from animalseg.data.synthetic import SyntheticDataset
from animalseg.errors import ConfigError
from animalseg.losses.composite import SegmentationLoss
from animalseg.run import check_same_run
from animalseg.tracking.mlflow import MlflowTracker
from animalseg.training.hardware import Hardware
from animalseg.training.trainer import Trainer
from tests.helpers import ANIMALS, CONF, TINY, TINY_PARTS, compose_config, tiny

GROUPS = ["data", "model", "loss", "optimizer", "schedule", "augmentation", "hardware", "trainer", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_required_group_has_options():
    for group in [*GROUPS, "paths"]:
        assert options(group), group
    assert (CONF / "experiment").is_dir()


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_option_composes_and_instantiates(group, option, tmp_path):
    real_files = group == "data" and option != "synthetic"
    overrides = tiny(option) if group == "model" else [f"{group}={option}", *(TINY_PARTS if real_files else TINY)]
    cfg = compose_config(overrides)
    if real_files and option == "animals" and not ANIMALS.is_dir():
        pytest.skip(f"{ANIMALS} is absent")
    if real_files and option != "animals":
        shapes = SyntheticDataset(image_size=32, train_size=8, val_size=2)
        cfg.data.root = str(write_layout(shapes, option, tmp_path / option))  # a dataset in that option's layout
    validate_config(cfg)
    node = cfg[group]
    if group == "model":
        built = instantiate(node, num_classes=3)
        assert isinstance(built, keras.Model)
        assert set(built.output) == {"sem_logits", "boundary_logits"}
    elif group == "loss":
        if option == "objective":  # what every option shares: no term of its own
            with pytest.raises(ConfigError, match="loss.terms={}"):
                build_loss(node, ignore_index=255, class_weights=None)
        else:
            assert isinstance(build_loss(node, ignore_index=255, class_weights=None), SegmentationLoss)
    elif group == "schedule":
        schedule = instantiate(node)(learning_rate=1e-3, steps_per_epoch=10)
        optimizer = instantiate_optimizer(cfg.optimizer, learning_rate=schedule.learning_rate)
        assert isinstance(optimizer, keras.optimizers.Optimizer)
    elif group == "optimizer":
        assert isinstance(instantiate_optimizer(node), keras.optimizers.Optimizer)
    elif group == "trainer":
        assert isinstance(build_trainer(cfg), Trainer)
    else:
        expected = {
            "data": DataModule,
            "augmentation": Augmentation,
            "hardware": Hardware,
            "logger": MlflowTracker,
        }[group]
        assert isinstance(instantiate(node), expected)


def test_default_config_has_the_public_keys():
    cfg = compose_config()
    for key in (
        "data.crop_size",
        "data.batch_size",
        "model.base_filters",
        "loss.boundary_weight",
        "trainer.epochs",
        "trainer.deterministic",
        "logger.experiment_name",
        "logger.tracking_uri",
        "seed",
    ):
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    focal = compose_config(["loss=focal", "loss.terms.focal.alpha=0.75", "loss.terms.focal.gamma=3"]).loss
    assert (list(focal.terms), focal.terms.focal.alpha, focal.terms.focal.gamma) == (["focal"], 0.75, 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size=0: must be a positive integer"),
        ("optimizer.learning_rate=-1", "optimizer.learning_rate=-1: must be a positive number"),
        ("trainer.epochs=0", "trainer.epochs=0"),
        ("data.root=/no/such/folder", "data.root=/no/such/folder: folder not found"),
        (
            "data.crop_schedule=[[10,192],[5,224]]",
            "data.crop_schedule=[[10, 192], [5, 224]]: its first epochs [10, 5] must be strictly increasing",
        ),
        (
            "data.crop_schedule=[192,224]",
            "data.crop_schedule=[192, 224]: 192 is no [first epoch, crop side] pair, e.g. [[10,192],[20,224]]",
        ),
        (
            "data.crop_schedule=[[10,192.5]]",
            "data.crop_schedule=[[10, 192.5]]: the crop side of [10, 192.5] must be a positive whole number of pixels",
        ),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config([override]))
    assert message in str(error.value)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1])
def test_ema_momentum_must_be_inside_0_and_1(value):
    cfg = compose_config(["callbacks=[default,ema]", f"callbacks.ema.momentum={value}"])
    with pytest.raises(ConfigError) as error:
        instantiate_callbacks(cfg)
    assert error.value.problems == [f"callbacks.ema.momentum={value}: must be a number in (0, 1), e.g. 0.99"]


def test_freeze_encoder_bn_must_be_a_boolean():
    with pytest.raises(ConfigError, match="model.freeze_encoder_bn='yes': must be true or false"):
        validate_config(compose_config(["model=unet_efficientnet", "model.freeze_encoder_bn=yes"]))


def test_class_weights_on_a_loss_that_weights_no_class_stop_the_run_before_they_are_counted(tmp_path, monkeypatch):
    from animalseg.data import stats
    from animalseg.run import run

    def counting(*args, **kwargs):
        raise AssertionError("class weights were counted before the config was checked")

    monkeypatch.setattr(stats, "pixel_counts", counting)
    cfg = compose_config([*TINY, "loss=dice", "loss.class_weights=auto"])
    with pytest.raises(ConfigError) as error:
        run(cfg, run_dir=tmp_path / "run")
    assert error.value.problems == [
        "loss.class_weights=auto: no term of the loss weights classes (dice); "
        "drop it or add a term that does (ce, focal)"
    ]


@pytest.mark.parametrize(
    ("override", "new_place"),
    [
        ("loss.semantic=focal+dice", "loss=[focal,dice]"),
        ("loss.alpha=0.5", "loss.terms.focal.alpha"),
        ("loss.gamma=2", "loss.terms.focal.gamma"),
        ("loss.tversky_alpha=0.2", "loss.terms.tversky.alpha"),
        ("loss.semantic_weights=[1,2]", "loss.terms.<name>.weight"),
        ("loss.class_weight_epochs=6", "callbacks=[default,class_weight_fade]"),
        ("optimizer.use_ema=true", "callbacks=[default,ema]"),
        ("optimizer.ema_momentum=0.9", "callbacks.ema.momentum"),
        ("optimizer.ema_recompute_bn=last", "callbacks.ema.recompute_bn"),
        ("trainer.early_stopping={patience: 3}", "'callbacks=[default,early_stopping]'"),
        ("trainer.early_stopping.patience=3", "'callbacks=[default,early_stopping]'"),
        ("optimizer.use_ema=false", "'~callbacks.ema'"),
        ("loss.class_weight_epochs=null", "'~callbacks.class_weight_fade'"),
        ("trainer.num_examples=2", "callbacks.evaluation.num_examples"),
    ],
)
def test_a_moved_key_names_its_new_place_on_the_command_line_and_in_a_config(override, new_place):
    key = override.partition("=")[0]
    assert moved_key_problems([f"+{key}"]) == moved_key_problems([key])
    (problem,) = moved_key_problems([key])
    assert problem.startswith(f"{key} has moved: ") and new_place in problem
    with pytest.raises(ConfigError) as error:  # a user's own experiment file that still sets it
        validate_config(compose_config([f"+{override}"]))
    assert any(line.endswith(problem.partition(" has moved: ")[2]) for line in error.value.problems)


def test_crop_size_must_be_divisible_by_the_built_models_stride():
    cfg = compose_config(["model=unet", "model.base_filters=2", "data.crop_size=50"])
    validate_config(cfg)  # the stride is the model's: only the built model can be checked
    model = instantiate(cfg.model, num_classes=3)
    with pytest.raises(ConfigError) as error:
        check_model_input(cfg, model)
    assert "data.crop_size=50: must be divisible by 16 (the output stride of model unet); e.g. data.crop_size=48" in (
        str(error.value)
    )
    cfg.data.crop_size = 48
    check_model_input(cfg, model)
    cfg.data.crop_schedule = [[2, 64], [4, 72]]
    with pytest.raises(ConfigError) as error:
        check_model_input(cfg, model)
    assert error.value.problems == [
        "data.crop_schedule=[[2, 64], [4, 72]]: every crop side must be divisible by 16 "
        "(the output stride of model unet); e.g. 'data.crop_schedule=[[2,64],[4,64]]'"
    ]
    cfg.data.crop_schedule = [[2, 64], [4, 80]]
    check_model_input(cfg, model)


def test_defaults_do_not_hurt():
    """Focal without an alpha balances no class (0.25 favoured the background); the LR decays."""
    cfg = compose_config(["loss=focal"])
    assert cfg.loss.terms.focal.alpha is None
    assert cfg.schedule._target_.endswith(".cosine")
    assert compose_config(["schedule=constant"]).schedule._target_.endswith(".constant")


def test_raising_the_epochs_of_a_cosine_run_continues_it(tmp_path):
    """The default cosine schedule's length follows trainer.epochs: raising it is no other run."""
    saved = tmp_path / "config.yaml"
    saved.write_text(OmegaConf.to_yaml(compose_config([*TINY, "trainer.epochs=1"]), resolve=True))
    check_same_run(saved, compose_config([*TINY, "trainer.epochs=2"]))
    with pytest.raises(ConfigError, match="schedule.epochs: 1"):
        check_same_run(saved, compose_config([*TINY, "trainer.epochs=2", "schedule.epochs=3"]))


def test_debug_tiny_shrinks_any_run_and_yields_to_explicit_overrides():
    tiny_run = compose_config(["debug=tiny", "data=animals", "model=unet_efficientnet", "data.crop_size=64"])
    assert (tiny_run.data.crop_size, tiny_run.data.batch_size, tiny_run.trainer.epochs) == (64, 4, 1)
    assert tiny_run.logger.log_model is False and tiny_run.model.encoder == "EfficientNetB3"  # the model is kept


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "hardware").glob("*.yaml")))
def test_a_hardware_option_sets_only_how_the_machine_is_used(option):
    """hardware=* is precision, XLA, threads and distribution; sizes and batches are the science of
    the experiments that need them (the report's 512 px crops, the CPU ablation's 128 px images)."""
    for base in ([], ["experiment=baseline_unet"], ["experiment=ablation_cpu/efficientnet_unet"]):
        plain = OmegaConf.to_container(compose_config(base), resolve=False)
        chosen = OmegaConf.to_container(compose_config([*base, f"hardware={option}"]), resolve=False)
        plain.pop("hardware"), chosen.pop("hardware")
        assert chosen == plain, option


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.decoder=segformer", "model.decoder='segformer': choose from unet, unetplusplus, fpn, deeplabv3plus"),
        ("+model.freeze_encoder_epochs=-1", "model.freeze_encoder_epochs=-1: must be >= 0"),
        ("+model.typo=1", "model.typo: UNet takes no argument 'typo'"),
    ],
)
def test_a_bad_model_setting_is_one_line_from_the_models_own_check(override, message):
    with pytest.raises(ConfigError) as error:
        build_node(compose_config([override]).model, "model", keras.Model, num_classes=3)
    assert len(error.value.problems) == 1 and error.value.problems[0].startswith(message)
