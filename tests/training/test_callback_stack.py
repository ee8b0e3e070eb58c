"""The callbacks config group: built from YAML, ordered by stage and then config order."""

from __future__ import annotations

import json

import pytest

from animalseg.build import build_run, instantiate_callbacks
from animalseg.errors import ConfigError
from animalseg.run import run
from animalseg.training.callbacks import Checkpoint, Evaluation, Stage, TrainingCallback, order_callbacks
from tests.helpers import TINY, compose_config


class CountsBestEpochs(TrainingCallback):
    """A callback written by a user: reads val_miou, keeps a counter that must survive a resume."""

    def __init__(self, monitor: str = "val_miou"):
        super().__init__()
        self.needs = (monitor,)
        self.monitor = monitor
        self.seen: list[float] = []
        self.count = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(logs[self.monitor])  # a KeyError if it ran before the evaluation
        self.count += 1

    def get_state(self):
        return {"count": self.count}

    def set_state(self, state):
        self.count = state["count"]


def names(callbacks):
    return [c.name for c in callbacks]


def test_the_default_stack_comes_from_the_config_group():
    cfg = compose_config(TINY)
    built = instantiate_callbacks(cfg)
    assert names(built) == ["lr_logger", "evaluation", "checkpoint", "epoch_timer", "epoch_line", "nan_guard", "mlflow"]


def test_callbacks_are_added_and_dropped_from_the_command_line():
    target = f"{__name__}.CountsBestEpochs"
    cfg = compose_config([*TINY, "~callbacks.mlflow", f"+callbacks.counter={{_target_: {target}}}"])
    assert names(instantiate_callbacks(cfg))[-1] == "counter"
    assert "mlflow" not in names(instantiate_callbacks(cfg))
    cfg = compose_config([*TINY, "callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=3"])
    stopping = instantiate_callbacks(cfg)[-1]
    assert stopping.name == "early_stopping" and stopping.patience == 3
    cfg = compose_config([*TINY, "callbacks=[default,ema,class_weight_fade]"])
    assert names(instantiate_callbacks(cfg))[-2:] == ["ema", "class_weight_fade"]


def test_order_is_by_stage_then_config_order():
    cfg = compose_config([*TINY, "callbacks=[default,ema,early_stopping,class_weight_fade]"])
    ordered = names(order_callbacks(instantiate_callbacks(cfg)))
    assert ordered == [
        "ema",  # weights: the EMA is what the epoch ends with
        "lr_logger",  # measure, in config order
        "evaluation",
        "class_weight_fade",
        "early_stopping",  # decide
        "checkpoint",  # save
        "epoch_timer",  # report, in config order
        "epoch_line",
        "nan_guard",
        "mlflow",
    ]
    checkpoint, evaluation, logger = Checkpoint(), Evaluation(), CountsBestEpochs()
    for callback, name in ((checkpoint, "checkpoint"), (evaluation, "evaluation"), (logger, "logger")):
        callback.name = name
    assert names(order_callbacks([logger, checkpoint, evaluation])) == ["evaluation", "checkpoint", "logger"]


def test_a_need_that_nothing_provides_names_the_callback():
    checkpoint = Checkpoint(monitor="val_miou")
    checkpoint.name = "checkpoint"
    with pytest.raises(ConfigError, match=r"callbacks.checkpoint needs val_miou"):
        order_callbacks([checkpoint])
    reads_too_early = CountsBestEpochs()
    reads_too_early.name, reads_too_early.stage = "early", Stage.WEIGHTS  # before the evaluation
    with pytest.raises(ConfigError, match=r"callbacks.early needs val_miou, which no callback before it provides"):
        order_callbacks([Evaluation(), reads_too_early])


def test_a_callbacks_key_without_a_target_is_an_error_not_a_callback_left_out():
    with pytest.raises(ConfigError) as error:
        instantiate_callbacks(compose_config([*TINY, "+callbacks.ema.momentum=0.9"]))
    assert error.value.problems == [
        "callbacks.ema: sets no _target_, so no callback; add the option with 'callbacks=[default,ema]' "
        "(or give +callbacks.ema._target_)"
    ]


def test_a_stack_the_trainer_cannot_run_is_refused_before_the_run_writes_anything(tmp_path):
    cfg = compose_config([*TINY, "callbacks=[ema]", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError) as error:
        build_run(cfg, tracker_args={"tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    assert error.value.problems[0].startswith("the trainer's resume state needs last.keras, which no callback")
    assert not (tmp_path / "m.db").exists()


def test_a_bad_target_is_a_config_error():
    cfg = compose_config([*TINY, "+callbacks.typo={_target_: animalseg.training.callbacks.NoSuchThing}"])
    with pytest.raises(ConfigError, match="callbacks.typo"):
        instantiate_callbacks(cfg)


@pytest.mark.slow
def test_a_users_callback_runs_after_evaluation_and_its_state_resumes(tmp_path, tracking_uri):
    target = f"{__name__}.CountsBestEpochs"
    overrides = [
        *TINY,
        f"+callbacks.counter={{_target_: {target}}}",
        "schedule=constant",  # raised trainer.epochs resumes only when the rate does not depend on it
        f"logger.tracking_uri={tracking_uri}",
    ]
    run(compose_config([*overrides, "trainer.epochs=1"]), run_dir=tmp_path / "run")
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert state["callbacks"]["counter"] == {"count": 1}
    run(compose_config([*overrides, "trainer.epochs=2"]), run_dir=tmp_path / "run")  # resumes after epoch 1
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert state["callbacks"]["counter"] == {"count": 2}
