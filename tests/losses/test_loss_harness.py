"""Every loss the ``loss`` config group builds, through the checks any loss must pass: a Keras
serialisation round trip, no effect of ignore pixels, finite gradients at extreme logits (also
from float16 inputs) and a non-negative value."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra.utils import get_class

import animalseg.losses
from animalseg.build import build_loss
from tests.helpers import CONF, compose_config

CLASSES = 3
IGNORE = 255
OPTIONS = sorted(p.stem for p in (CONF / "loss").glob("*.yaml"))
# (id, overrides, head): every option of the group, weighted CE, and the boundary BCE
OPTIONS.remove("objective")  # what every option shares, not a loss
CASES = [
    *[(option, (f"loss={option}",), "semantic") for option in OPTIONS],
    ("ce_dice_weighted", ("loss=[ce,dice]", "loss.terms.dice.weight=0.5"), "semantic"),
    ("weighted_ce", ("loss=ce", "loss.class_weights=[0.5,2.0,1.5]"), "semantic"),
    ("boundary_bce", ("loss=ce", "loss.boundary_pos_weight=5.0"), "boundary"),
]


@functools.cache
def _build(overrides: tuple[str, ...], head: str) -> keras.losses.Loss:
    """The loss as the config builds it (composed once per case: the losses hold no state)."""
    loss_cfg = compose_config(list(overrides)).loss
    objective = build_loss(loss_cfg, ignore_index=IGNORE, class_weights=loss_cfg.class_weights)
    return objective.semantic if head == "semantic" else objective.boundary


def _batch(head: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Targets with ignore pixels in the first row, and random logits."""
    rng = np.random.default_rng(seed)
    if head == "semantic":
        targets = rng.integers(0, CLASSES, size=(2, 4, 4)).astype("int32")
        logits = rng.normal(size=(2, 4, 4, CLASSES))
    else:
        targets = rng.integers(0, 2, size=(2, 4, 4, 1)).astype("float32")
        logits = rng.normal(size=(2, 4, 4, 1))
    targets[:, 0] = IGNORE
    return targets, logits.astype("float32")


def _extreme(logits: np.ndarray, seed: int = 1) -> np.ndarray:
    """Logits of +-40: softmax/sigmoid probabilities round to exactly 0 and 1 in float32."""
    return np.where(np.random.default_rng(seed).random(logits.shape) < 0.5, -40.0, 40.0).astype("float32")


def test_the_cases_cover_every_loss_the_package_offers_as_a_term():
    offered = {
        cls for cls in vars(animalseg.losses).values() if isinstance(cls, type) and issubclass(cls, keras.losses.Loss)
    } - {animalseg.losses.WeightedSum, animalseg.losses.BoundaryBCE}  # the sum of terms; the boundary head's
    covered = {
        get_class(term._target_)
        for option in OPTIONS
        for term in compose_config([f"loss={option}"]).loss.terms.values()
    }
    assert covered == offered


@pytest.mark.parametrize(("overrides", "head"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_serialisation_round_trip_keeps_the_value(overrides, head):
    loss = _build(overrides, head)
    targets, logits = _batch(head)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    assert float(clone(targets, logits)) == pytest.approx(float(loss(targets, logits)), rel=1e-6)


@pytest.mark.parametrize(("overrides", "head"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_ignore_pixels_change_nothing(overrides, head):
    loss = _build(overrides, head)
    targets, logits = _batch(head)
    changed = logits.copy()
    changed[:, 0] = 100.0 * np.random.default_rng(7).normal(size=changed[:, 0].shape)
    assert float(loss(targets, changed)) == pytest.approx(float(loss(targets, logits)), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("overrides", "head"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_gradients_are_finite_and_values_non_negative_at_extreme_logits(overrides, head, dtype):
    loss = _build(overrides, head)
    targets, logits = _batch(head)
    for inputs in (logits, _extreme(logits)):
        variable = tf.Variable(inputs.astype(dtype))
        with tf.GradientTape() as tape:
            value = loss(targets, variable)
        gradient = tape.gradient(value, variable)
        assert gradient is not None and np.isfinite(gradient.numpy()).all()
        assert np.isfinite(float(value)) and float(value) >= 0.0
