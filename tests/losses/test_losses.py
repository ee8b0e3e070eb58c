import keras
import numpy as np
import pytest

from animalseg.build import build_loss
from animalseg.errors import ConfigError
from animalseg.losses import (
    BoundaryBCE,
    ClassWeighted,
    SegmentationLoss,
    SparseCrossEntropy,
    SparseDiceLoss,
    SparseFocalLoss,
    SparseTverskyLoss,
)
from tests.helpers import compose_config

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
LABELS = RNG.integers(0, 3, size=(2, 4, 4)).astype("int32")


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _log_pt(logits, labels):
    return np.take_along_axis(_log_softmax(logits), labels[..., None], -1)[..., 0]


def test_focal_with_gamma_zero_and_no_alpha_is_cross_entropy():
    focal = SparseFocalLoss(alpha=None, gamma=0.0)
    ce = SparseCrossEntropy()
    assert float(focal(LABELS, LOGITS)) == pytest.approx(float(ce(LABELS, LOGITS)), rel=1e-5)
    assert float(focal(LABELS, LOGITS)) == pytest.approx(-_log_pt(LOGITS, LABELS).mean(), rel=1e-5)


def test_label_smoothing_matches_keras_categorical_crossentropy_and_skips_void_pixels():
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        np.eye(3, dtype="float32")[LABELS], LOGITS
    )
    smoothed = SparseCrossEntropy(label_smoothing=0.1)
    assert float(smoothed(LABELS, LOGITS)) == pytest.approx(float(expected), rel=1e-5)
    weights = np.array([0.5, 2.0, 1.5], "float32")  # the true class's weight scales its pixel's whole term
    keras_weighted = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        np.eye(3, dtype="float32")[LABELS], LOGITS, sample_weight=weights[LABELS]
    )
    weighted = SparseCrossEntropy(label_smoothing=0.1, class_weights=weights.tolist())(LABELS, LOGITS)
    assert float(weighted) == pytest.approx(float(keras_weighted), rel=1e-5)
    labels = LABELS.copy()
    labels[:, :2] = 255
    changed = LOGITS.copy()
    changed[:, :2] = 100.0
    assert float(smoothed(labels, LOGITS)) == pytest.approx(float(smoothed(labels, changed)), rel=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(smoothed))
    assert clone.get_config() == smoothed.get_config() and clone.label_smoothing == 0.1


def test_focal_by_hand_with_scalar_alpha():
    log_pt = _log_pt(LOGITS, LABELS)
    alpha_t = np.where(LABELS == 0, 0.25, 0.75)
    expected = (-alpha_t * (1 - np.exp(log_pt)) ** 3 * log_pt).mean()
    value = float(SparseFocalLoss(alpha=0.75, gamma=3.0)(LABELS, LOGITS))
    assert value == pytest.approx(expected, rel=1e-5)


def test_focal_per_class_alpha():
    alpha = [0.1, 0.5, 0.9]
    log_pt = _log_pt(LOGITS, LABELS)
    expected = (-np.take(alpha, LABELS) * (1 - np.exp(log_pt)) ** 2 * log_pt).mean()
    value = float(SparseFocalLoss(alpha=alpha, gamma=2.0)(LABELS, LOGITS))
    assert value == pytest.approx(expected, rel=1e-5)


def test_ignored_pixels_contribute_nothing():
    labels = LABELS.copy()
    labels[:, :2] = 255
    for loss in (SparseFocalLoss(alpha=0.5, gamma=2.0), SparseCrossEntropy()):
        changed = LOGITS.copy()
        changed[:, :2] = 100.0 * RNG.normal(size=changed[:, :2].shape)
        assert float(loss(labels, LOGITS)) == pytest.approx(float(loss(labels, changed)), rel=1e-5)
    # and the mean is over the valid pixels only
    focal = SparseFocalLoss(alpha=None, gamma=0.0)
    expected = -_log_pt(LOGITS[:, 2:], LABELS[:, 2:]).mean()
    assert float(focal(labels, LOGITS)) == pytest.approx(expected, rel=1e-5)


def test_boundary_bce_ignores_void_and_weights_edges():
    logits = np.array([[0.0, 2.0, -1.0, 5.0]], "float32")
    target = np.array([[1.0, 0.0, 1.0, 255.0]], "float32")
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected = (3 * softplus(0.0) + softplus(2.0) + 3 * softplus(1.0)) / 3
    assert float(BoundaryBCE(pos_weight=3.0)(target, logits)) == pytest.approx(expected, rel=1e-5)


def test_losses_round_trip_through_keras_serialisation():
    for loss in (SparseFocalLoss(alpha=[0.2, 0.8], gamma=1.5), BoundaryBCE(pos_weight=4.0)):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert clone.get_config() == loss.get_config()


def test_the_objective_weights_the_boundary_head_and_sums_the_terms():
    loss = SegmentationLoss.from_terms({"focal": (SparseFocalLoss(alpha=0.75, gamma=3.0), 1.0)}, boundary_weight=0.3)
    kwargs = loss.compile_kwargs("sem_logits", "boundary_logits")
    assert kwargs["loss_weights"] == {"sem_logits": 1.0, "boundary_logits": 0.3}
    assert isinstance(kwargs["loss"]["sem_logits"], SparseFocalLoss)  # one term of weight 1: itself
    terms = {"ce": (SparseCrossEntropy(), 1.0), "dice": (SparseDiceLoss(), 0.5)}
    summed = SegmentationLoss.from_terms(terms).semantic
    expected = float(SparseCrossEntropy()(LABELS, LOGITS)) + 0.5 * float(SparseDiceLoss()(LABELS, LOGITS))
    assert float(summed(LABELS, LOGITS)) == pytest.approx(expected, rel=1e-6)


def test_weighted_cross_entropy_weights_each_pixel_by_its_class():
    weights = np.array([0.5, 2.0, 1.5])
    expected = (-_log_pt(LOGITS, LABELS) * weights[LABELS]).sum() / LABELS.size
    assert float(SparseCrossEntropy(class_weights=list(weights))(LABELS, LOGITS)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_focal_gradient_is_finite_when_a_pixel_is_certain(gamma, dtype):
    import tensorflow as tf

    logits = np.zeros((1, 2, 2, 3), "float32")
    logits[0, 0, 0, 1] = 40.0  # p_t rounds to 1.0 in float32: (1 - p_t)^gamma has an infinite slope at 0
    labels = np.array([[[1, 0], [2, 255]]], "int32")
    variable = tf.Variable(logits.astype(dtype))
    focal = SparseFocalLoss(alpha=None, gamma=gamma)
    with tf.GradientTape() as tape:
        value = focal(labels, variable)
    gradient = tape.gradient(value, variable).numpy()
    assert np.isfinite(gradient).all() and np.isfinite(float(value))
    if gamma == 0.0:  # cross-entropy, with its gradient (softmax - one-hot) / valid pixels
        ce = SparseCrossEntropy()
        assert float(value) == pytest.approx(float(ce(labels, logits)), rel=1e-3 if dtype == "float16" else 1e-6)
        expected = np.exp(_log_softmax(logits)) - np.eye(3)[np.where(labels == 255, 0, labels)]
        expected[labels == 255] = 0.0
        np.testing.assert_allclose(gradient, expected / 3, atol=1e-3 if dtype == "float16" else 1e-6)


def test_each_term_takes_its_own_arguments_and_class_weights_go_to_the_terms_that_weight_classes():
    cfg = compose_config(["loss=focal_tversky", "loss.terms.focal.alpha=0.75", "loss.terms.focal.gamma=3"]).loss
    focal, tversky = build_loss(cfg, ignore_index=255, class_weights=[1.0, 2.0, 3.0]).semantic.losses
    assert isinstance(focal, SparseFocalLoss) and isinstance(tversky, SparseTverskyLoss)
    assert (focal.alpha, focal.gamma, focal.class_weights) == (0.75, 3.0, [1.0, 2.0, 3.0])
    assert (tversky.alpha, tversky.beta) == (0.3, 0.7)
    assert isinstance(focal, ClassWeighted) and not isinstance(tversky, ClassWeighted)


class SquaredError(keras.losses.Loss):
    """A loss written by a user: one class, registered as a term by its YAML alone."""

    def __init__(self, ignore_index: int = 255, scale: float = 1.0, name: str = "squared_error", **kwargs):
        super().__init__(name=name, **kwargs)
        if scale <= 0:
            raise ValueError(f"scale={scale!r}: must be > 0")
        self.ignore_index, self.scale = ignore_index, scale

    def call(self, y_true, y_pred):
        return self.scale * keras.ops.mean(keras.ops.square(y_pred))


def test_a_users_loss_is_a_term_with_its_own_arguments():
    target = f"{__name__}.SquaredError"
    cfg = compose_config(["loss=ce", f"+loss.terms.mine={{_target_: {target}, weight: 0.1, scale: 2.0}}"]).loss
    objective = build_loss(cfg, ignore_index=255, class_weights=None).semantic
    ce, mine = objective.losses
    assert objective.weights == [1.0, 0.1] and isinstance(ce, SparseCrossEntropy)
    assert isinstance(mine, SquaredError) and mine.scale == 2.0
    with pytest.raises(ConfigError) as error:
        build_loss(compose_config(["loss=ce", f"+loss.terms.mine={{_target_: {target}, scale: -1}}"]).loss, 255, None)
    assert error.value.problems == ["loss.terms.mine.scale=-1: must be > 0"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=focal", "loss.terms.focal.gamma=-1"], "loss.terms.focal.gamma=-1: must be a number >= 0"),
        (
            ["loss=focal", "loss.terms.focal.alpha=1.5"],
            "loss.terms.focal.alpha=1.5: must be null, a number in [0, 1] or a list of per-class numbers in [0, 1]",
        ),
        (
            ["loss=ce", "loss.terms.ce.label_smoothing=1"],
            "loss.terms.ce.label_smoothing=1: must be a number in [0, 1) (0 turns it off)",
        ),
        (["loss=tversky", "loss.terms.tversky.beta=-0.1"], "loss.terms.tversky.beta=-0.1: must be a number >= 0"),
        (
            ["loss=dice", "+loss.terms.dice.alpha=0.3"],
            "loss.terms.dice.alpha: SparseDiceLoss takes no argument 'alpha' (it takes weight)",
        ),
        (
            ["loss=ce", "+loss.terms.ce.gamma=2"],
            "loss.terms.ce.gamma: SparseCrossEntropy takes no argument 'gamma' (it takes label_smoothing, weight)",
        ),
        (["loss=[ce,dice]", "loss.terms.dice.weight=-1"], "loss.terms.dice.weight=-1: must be a number >= 0"),
        (["loss=ce", "loss.boundary_weight=-0.5"], "loss.boundary_weight=-0.5: must be a number >= 0"),
        (["loss=ce", "loss.boundary_pos_weight=0"], "loss.boundary_pos_weight=0: must be a number > 0"),
        (["loss=ce", "~loss.terms.ce"], "loss.terms={}: the semantic head needs at least one term (e.g. loss=ce)"),
        (
            ["loss=ce", "+loss.terms.focal.gamma=2"],
            "loss.terms.focal: sets no _target_, so no loss; add the term with loss=focal or 'loss=[ce,focal]'",
        ),
        (
            ["loss=tversky", "+loss.terms.tversky.gamma=2"],
            "loss.terms.tversky.gamma: SparseTverskyLoss takes no argument 'gamma' (it takes alpha, beta, weight)",
        ),
        (
            ["loss=ce", "loss.terms.ce._target_=animalseg.losses.NoSuchLoss"],
            "loss.terms.ce._target_=animalseg.losses.NoSuchLoss: cannot import it",
        ),
    ],
)
def test_a_bad_term_is_one_line_naming_its_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        build_loss(compose_config(overrides).loss, ignore_index=255, class_weights=None)
    assert len(error.value.problems) == 1 and error.value.problems[0].startswith(message)
