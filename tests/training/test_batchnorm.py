"""BatchNorm statistics recomputed for the weights a model holds (the EMA weights): the average of
every batch's statistics, computed by hand here on a tiny model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from animalseg.training.batchnorm import recompute_batchnorm


def tiny_model() -> keras.Model:
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="b1")(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.5, name="drop")(x)  # off in the pass: the hand computation has none
    x = layers.Conv2D(5, 1, name="c2")(x)
    x = layers.BatchNormalization(name="b2")(x)
    outputs = layers.BatchNormalization(name="b3")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("b3").trainable = False  # frozen: inference mode in training, left alone
    rng = np.random.default_rng(0)
    for name in ("b1", "b2", "b3"):  # statistics and scales that are not the defaults
        bn = model.get_layer(name)
        bn.gamma.assign(rng.uniform(0.5, 2.0, bn.gamma.shape))
        bn.beta.assign(rng.normal(size=bn.beta.shape))
        bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape))
        bn.moving_variance.assign(rng.uniform(0.1, 5.0, bn.moving_variance.shape))
    return model


def moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = features.astype(np.float64)
    return features.mean(axis=(0, 1, 2)), features.var(axis=(0, 1, 2))


def by_hand(model: keras.Model, images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each trained BatchNorm's input statistics on one batch, the first one normalising by the
    batch's own statistics as in training."""
    b1 = model.get_layer("b1")
    h1 = keras.ops.convert_to_numpy(model.get_layer("c1")(images))
    mean1, var1 = moments(h1)
    gamma, beta = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in (b1.gamma, b1.beta))
    normalised = np.maximum(gamma * (h1 - mean1) / np.sqrt(var1 + b1.epsilon) + beta, 0.0)
    h2 = keras.ops.convert_to_numpy(model.get_layer("c2")(normalised.astype(np.float32)))
    return {"b1": (mean1, var1), "b2": moments(h2)}


def test_the_statistics_are_the_image_weighted_average_of_each_batchs():
    model = tiny_model()
    rng = np.random.default_rng(1)
    batches = [rng.normal(2.0, 3.0, (n, 6, 6, 3)).astype(np.float32) for n in (4, 2, 3)]
    expected = [by_hand(model, images) for images in batches]
    weights_before = {v.path: keras.ops.convert_to_numpy(v) for v in model.variables}
    b3_before = [
        keras.ops.convert_to_numpy(v)
        for v in (model.get_layer("b3").moving_mean, model.get_layer("b3").moving_variance)
    ]

    seen = recompute_batchnorm(model, [batches[0], (batches[1], {"target": None}), batches[2]])

    assert seen == 9
    for name in ("b1", "b2"):
        bn = model.get_layer(name)
        mean = sum(len(b) * e[name][0] for b, e in zip(batches, expected, strict=True)) / 9
        variance = sum(len(b) * e[name][1] for b, e in zip(batches, expected, strict=True)) / 9
        np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), variance, rtol=1e-4, atol=1e-5)
    b3 = model.get_layer("b3")
    for before, variable in zip(b3_before, (b3.moving_mean, b3.moving_variance), strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), before)
    for variable in model.variables:  # nothing else moved: kernels, scales, offsets
        if "moving" not in variable.path or variable.path.startswith("b3"):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), weights_before[variable.path])
    b1 = model.get_layer("b1")
    assert b1.momentum == 0.9 and "call" not in vars(b1)  # the layer is itself again


def test_an_error_part_way_leaves_the_statistics_as_they_were():
    model = tiny_model()
    b1 = model.get_layer("b1")
    before = keras.ops.convert_to_numpy(b1.moving_mean)

    def batches():
        yield np.ones((2, 6, 6, 3), np.float32)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        recompute_batchnorm(model, batches())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(b1.moving_mean), before)
    assert b1.momentum == 0.9 and "call" not in vars(b1)
