"""loss.class_weight_epochs: the class weights fade to 1 over the first epochs, read by the
compiled training step at every epoch, and the key is refused where there is nothing to fade."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import ClassVar

import keras
import numpy as np
import pytest

from animalseg.build import instantiate_callbacks
from animalseg.config import validate_config
from animalseg.errors import ConfigError
from animalseg.losses.composite import build_segmentation_loss
from animalseg.run import run
from animalseg.training.callbacks import ClassWeightFade, TrainingCallback
from animalseg.training.state import RunState
from tests.helpers import TINY, compose_config


def test_the_exponent_takes_the_weights_from_as_given_to_one_inside_a_compiled_step():
    loss = build_segmentation_loss("ce", class_weights=[1.0, 3.0], boundary_weight=0.0).semantic
    model = keras.Sequential([keras.Input((1, 2, 2)), keras.layers.Identity()])
    model.compile(loss=loss)
    labels = np.array([[[0, 1]]])
    logits = np.zeros((1, 1, 2, 2), "float32")  # CE = log 2 per pixel
    for exponent, weights in [(1.0, (1, 3)), (0.5, (1, 3**0.5)), (0.0, (1, 1))]:
        loss.class_weight_exponent.assign(exponent)  # after the test step was traced: read at run time
        expected = np.log(2) * sum(weights) / 2
        assert model.evaluate(logits, labels, verbose=0) == pytest.approx(expected, rel=1e-5)


class Exponents(TrainingCallback):
    """Records the logged exponent and the loss's own variable at every epoch end."""

    needs = ("class_weight_exponent",)
    seen: ClassVar[list[tuple[float, float]]] = []

    def on_epoch_end(self, epoch, logs=None):
        variable = self.model.loss["sem_logits"].class_weight_exponent
        Exponents.seen.append((logs["class_weight_exponent"], float(variable.numpy())))


@pytest.mark.slow
def test_a_run_fades_the_weights_over_the_epochs_it_is_given(tmp_path):
    cfg = compose_config(
        [
            *TINY,
            "trainer.epochs=3",
            "~callbacks.mlflow",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "loss.class_weights=auto",
            "loss.class_weight_epochs=2",
            f"+callbacks.spy={{_target_: {__name__}.Exponents}}",
        ]
    )
    Exponents.seen = []
    run(cfg, run_dir=tmp_path / "run")
    assert Exponents.seen == [(1.0, 1.0), (0.5, 0.5), (0.0, 0.0)]


def test_the_fade_needs_class_weights_and_whole_epochs():
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(["loss.class_weight_epochs=8"]))
    assert "loss.class_weight_epochs=8: fades loss.class_weights, which is null" in str(error.value)
    weighted = ["loss.class_weights=auto", "loss.class_weight_epochs=8"]
    validate_config(compose_config(weighted))
    assert "class_weight_fade" in [callback.name for callback in instantiate_callbacks(compose_config(weighted))]
    for epochs in (0, 2.5):
        with pytest.raises(
            ConfigError, match=re.escape(f"class_weight_epochs={epochs}: must be null (held all run) or a")
        ):
            validate_config(compose_config(["loss.class_weights=auto", f"loss.class_weight_epochs={epochs}"]))
        by_hand = f"+callbacks.fade={{_target_: {ClassWeightFade.__module__}.ClassWeightFade, epochs: {epochs}}}"
        with pytest.raises(ConfigError, match=r"callbacks.fade: cannot build (?s:.*)whole number >= 1"):
            instantiate_callbacks(compose_config([by_hand]))


def _bound(loss, completed_epochs: int = 0) -> ClassWeightFade:
    fade = ClassWeightFade(8)
    fade.bind(SimpleNamespace(loss=loss, state=RunState(epoch=completed_epochs)))
    return fade


def test_the_fade_reaches_the_weighted_part_of_a_sum_and_follows_the_epoch_alone():
    loss = build_segmentation_loss("focal+dice", class_weights=[1.0, 3.0], semantic_weights=[1.0, 1.0])
    focal = loss.semantic.losses[0]
    assert loss.class_weighted() == [focal]
    _bound(loss).on_epoch_begin(5)  # a resumed run: no earlier epoch seen by this callback
    assert float(focal.class_weight_exponent.numpy()) == pytest.approx(1 - 5 / 8)
    _bound(loss, completed_epochs=30)  # resumed with no epoch left: the final scoring's exponent
    assert float(focal.class_weight_exponent.numpy()) == 0.0
    with pytest.raises(ConfigError, match="has none; set loss.class_weights"):
        _bound(build_segmentation_loss("focal+dice", semantic_weights=[1.0, 1.0]))
