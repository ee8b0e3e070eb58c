import keras
import numpy as np
import pytest

from animalseg.errors import ConfigError
from animalseg.losses.boundary import BoundaryBCE
from animalseg.losses.composite import build_segmentation_loss, cross_entropy
from animalseg.losses.focal import SparseFocalLoss
from animalseg.losses.region import SparseTverskyLoss

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
    ce = cross_entropy()
    assert float(focal(LABELS, LOGITS)) == pytest.approx(float(ce(LABELS, LOGITS)), rel=1e-5)
    assert float(focal(LABELS, LOGITS)) == pytest.approx(-_log_pt(LOGITS, LABELS).mean(), rel=1e-5)


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
    for loss in (SparseFocalLoss(alpha=0.5, gamma=2.0), cross_entropy()):
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


def test_composite_weights_the_boundary_term():
    loss = build_segmentation_loss("focal", boundary_weight=0.3, alpha=0.75, gamma=3.0)
    kwargs = loss.compile_kwargs("sem_logits", "boundary_logits")
    assert kwargs["loss_weights"] == {"sem_logits": 1.0, "boundary_logits": 0.3}
    assert isinstance(kwargs["loss"]["sem_logits"], SparseFocalLoss)
    with pytest.raises(ConfigError, match="loss.semantic=nope: unknown loss"):
        build_segmentation_loss("nope")


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
        ce = cross_entropy()
        assert float(value) == pytest.approx(float(ce(labels, logits)), rel=1e-3 if dtype == "float16" else 1e-6)
        expected = np.exp(_log_softmax(logits)) - np.eye(3)[np.where(labels == 255, 0, labels)]
        expected[labels == 255] = 0.0
        np.testing.assert_allclose(gradient, expected / 3, atol=1e-3 if dtype == "float16" else 1e-6)


def test_each_part_of_a_sum_takes_its_own_parameters():
    loss = build_segmentation_loss(
        "focal+tversky", alpha=0.75, gamma=3.0, tversky_alpha=0.3, tversky_beta=0.7, class_weights=[1.0, 2.0, 3.0]
    ).semantic
    focal, tversky = loss.losses
    assert isinstance(focal, SparseFocalLoss) and isinstance(tversky, SparseTverskyLoss)
    assert (focal.alpha, focal.gamma, focal.class_weights) == (0.75, 3.0, [1.0, 2.0, 3.0])
    assert (tversky.alpha, tversky.beta) == (0.3, 0.7)


@pytest.mark.parametrize(
    ("semantic", "settings", "message"),
    [
        (
            "dice",
            {"class_weights": [1, 2]},
            "loss.class_weights=[1, 2]: not used by loss.semantic=dice (used by ce, focal)",
        ),
        ("tversky", {"alpha": 0.3}, "loss.alpha=0.3: not used by loss.semantic=tversky (used by focal)"),
        (
            "focal+dice",
            {"tversky_beta": 0.7},
            "loss.tversky_beta=0.7: not used by loss.semantic=focal+dice (used by tversky)",
        ),
        ("ce", {"beta": 0.7}, "loss.beta=0.7: not used by loss.semantic=ce (no loss uses it)"),
        (
            "ce",
            {"class_weight_epochs": 8},
            "loss.class_weight_epochs=8: fades loss.class_weights, which is null; "
            "set loss.class_weights (auto, auto_share, auto_inverse or a list) or drop it",
        ),
    ],
)
def test_a_setting_the_loss_does_not_use_is_an_error(semantic, settings, message):
    with pytest.raises(ConfigError) as error:
        build_segmentation_loss(semantic, **settings)
    assert error.value.problems == [message]
    build_segmentation_loss(semantic, class_weights=None)  # null is "unset" for every loss
