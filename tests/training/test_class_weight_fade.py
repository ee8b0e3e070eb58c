"""callbacks.class_weight_fade: the class weights fade to 1 over the first epochs, read by the
compiled training step at every epoch, and the callback is refused where there is nothing to fade."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import keras
import numpy as np
import pytest

from animalseg.build import instantiate_callbacks
from animalseg.errors import ConfigError
from animalseg.losses import SegmentationLoss, SparseCrossEntropy, SparseDiceLoss, SparseFocalLoss
from animalseg.run import run
from animalseg.training.callbacks import ClassWeightFade, TrainingCallback
from animalseg.training.state import RunState
from tests.helpers import TINY, compose_config


def test_the_exponent_takes_the_weights_from_as_given_to_one_inside_a_compiled_step():
    loss = SparseCrossEntropy(class_weights=[1.0, 3.0])
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
            "callbacks=[default,class_weight_fade]",
            "callbacks.class_weight_fade.epochs=2",
            f"+callbacks.spy={{_target_: {__name__}.Exponents}}",
        ]
    )
    Exponents.seen = []
    run(cfg, run_dir=tmp_path / "run")
    assert Exponents.seen == [(1.0, 1.0), (0.5, 0.5), (0.0, 0.0)]


def test_the_fade_needs_whole_epochs_and_class_weights(tmp_path):
    for epochs in (0, 2.5):
        cfg = compose_config(["callbacks=[default,class_weight_fade]", f"callbacks.class_weight_fade.epochs={epochs}"])
        with pytest.raises(ConfigError) as error:
            instantiate_callbacks(cfg)
        assert error.value.problems == [f"callbacks.class_weight_fade.epochs={epochs}: must be a whole number >= 1"]
    cfg = compose_config(
        [*TINY, "callbacks=[default,class_weight_fade]", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    with pytest.raises(ConfigError) as error:  # when the run is built: nothing written, no MLflow run
        run(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "mlflow.db").exists()
    assert error.value.problems == [
        "callbacks.class_weight_fade: fades the loss's class weights and it has none; set loss.class_weights "
        "(auto, auto_share, auto_inverse or a list) or drop the callback"
    ]


def _bound(loss, completed_epochs: int = 0) -> ClassWeightFade:
    fade = ClassWeightFade(8)
    fade.bind(SimpleNamespace(loss=loss, state=RunState(epoch=completed_epochs)))
    return fade


def test_the_fade_reaches_the_weighted_part_of_a_sum_and_follows_the_epoch_alone():
    focal = SparseFocalLoss(class_weights=[1.0, 3.0])
    loss = SegmentationLoss.from_terms({"focal": (focal, 1.0), "dice": (SparseDiceLoss(), 1.0)})
    assert loss.class_weighted() == [focal]
    _bound(loss).on_epoch_begin(5)  # a resumed run: no earlier epoch seen by this callback
    assert float(focal.class_weight_exponent.numpy()) == pytest.approx(1 - 5 / 8)
    _bound(loss, completed_epochs=30)  # resumed with no epoch left: the final scoring's exponent
    assert float(focal.class_weight_exponent.numpy()) == 0.0
    with pytest.raises(ConfigError, match="has none; set loss.class_weights"):
        _bound(SegmentationLoss.from_terms({"focal": (SparseFocalLoss(), 1.0), "dice": (SparseDiceLoss(), 1.0)}))
