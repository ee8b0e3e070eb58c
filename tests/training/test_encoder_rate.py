"""optimizer.encoder_lr_multiplier: the encoder steps at that fraction of the scheduled rate, the
rest of the model at the full rate, in eager steps and inside ``model.fit`` alike."""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import pytest

from animalseg.build import build_run
from animalseg.config import validate_config
from animalseg.errors import ConfigError
from animalseg.run import run
from animalseg.training.callbacks import TrainingCallback
from tests.helpers import TINY, compose_config


def _encoder_ids(model: keras.Model) -> set[int]:
    return {id(v) for v in model.encoder.trainable_variables}


@pytest.mark.parametrize("multiplier", [0.25, 1.0])
def test_an_adam_step_moves_the_encoder_by_the_multiplier_and_the_decoder_in_full(multiplier):
    parts = build_run(compose_config([*TINY, "schedule=constant", f"optimizer.encoder_lr_multiplier={multiplier}"]))
    model, optimizer = parts.model, parts.job.optimizer()
    variables = model.trainable_variables
    optimizer.build(variables)
    before = [np.array(v) for v in variables]
    optimizer.apply([keras.ops.ones_like(v) for v in variables], variables)  # Adam's first step: lr x 1
    encoder, rate = _encoder_ids(model), parts.cfg.optimizer.learning_rate
    assert encoder and len(encoder) < len(variables)
    for variable, old in zip(variables, before, strict=True):
        expected = rate * (multiplier if id(variable) in encoder else 1.0)
        np.testing.assert_allclose(old - np.array(variable), expected, rtol=1e-3, err_msg=variable.path)


class EncoderWeights(TrainingCallback):
    """The encoder's and the rest's trainable weights at the start and end of the fit."""

    seen: ClassVar[dict[str, list[tuple[bool, np.ndarray]]]] = {}

    def _record(self, when: str) -> None:
        encoder = _encoder_ids(self.model)
        EncoderWeights.seen[when] = [(id(v) in encoder, np.array(v)) for v in self.model.trainable_variables]

    def on_train_begin(self, logs=None):
        self._record("begin")

    def on_train_end(self, logs=None):
        self._record("end")


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting",
    [
        [],
        # the loss-scale wrapper is built over the decoder alone in the frozen phase; the encoder
        # must still step at its own rate after the unfreeze
        ["hardware.precision=mixed_float16", "+model.freeze_encoder_epochs=1", "trainer.epochs=2"],
    ],
    ids=["float32", "mixed_float16_after_unfreeze"],
)
def test_a_fit_with_a_tiny_multiplier_leaves_the_encoder_where_it_started(tmp_path, setting):
    cfg = compose_config(
        [
            *TINY,
            "~callbacks.mlflow",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"+callbacks.spy={{_target_: {__name__}.EncoderWeights}}",
            "optimizer.encoder_lr_multiplier=1e-6",
            *setting,
        ]
    )
    run(cfg, run_dir=tmp_path / "run")  # "begin" is the start of the last phase's fit
    moved = {True: 0.0, False: 0.0}
    for (in_encoder, begin), (_, end) in zip(EncoderWeights.seen["begin"], EncoderWeights.seen["end"], strict=True):
        moved[in_encoder] = max(moved[in_encoder], float(np.abs(end - begin).max()))
    assert moved[True] < 1e-6 < 1e-4 < moved[False]
    # the checkpoint names the stock optimizer: it loads with its compile config too
    loaded = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert type(getattr(loaded.optimizer, "inner_optimizer", loaded.optimizer)) is keras.optimizers.Adam


@pytest.mark.parametrize("value", [0, -0.1, "'fast'"])
def test_a_multiplier_that_is_not_a_positive_number_is_named(value):
    with pytest.raises(ConfigError, match="optimizer.encoder_lr_multiplier"):
        validate_config(compose_config([*TINY, f"optimizer.encoder_lr_multiplier={value}"]))
