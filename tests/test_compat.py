"""The private library APIs animalseg relies on (animalseg/compat/) still behave as it assumes:
each test fails on a library version where one of them no longer holds."""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from animalseg.compat.keras import (
    efficientnet_builder,
    ema_pairs,
    hold_ema_at_fit_end,
    release_ema_at_fit_end,
    variable_key,
)
from animalseg.compat.mlflow import PythonModelWithSignature, alias_problem


def _fitted(use_ema: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1, use_ema=use_ema, ema_momentum=0.5), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=2, verbose=0)
    return model


def test_variable_keys_tell_variables_apart_and_stay_the_same():
    model = _fitted(False)
    keys = [variable_key(model.optimizer, v) for v in model.trainable_variables]
    assert len(set(keys)) == len(keys) == 2
    assert keys == [variable_key(model.optimizer, v) for v in model.trainable_variables]


def test_the_ema_slots_pair_each_trainable_variable_with_its_average():
    model = _fitted(True)
    pairs = list(ema_pairs(model.optimizer))
    assert [v.path for v, _ in pairs] == [v.path for v in model.trainable_variables]
    assert all(average is not None and average.shape == v.shape for v, average in pairs)


def test_holding_the_ema_keeps_fits_end_from_copying_it_into_the_model():
    model = _fitted(True)
    hold_ema_at_fit_end(model.optimizer)
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.optimizer.finalize_variable_values(model.trainable_variables)
    assert all(
        np.array_equal(a, keras.ops.convert_to_numpy(v)) for a, v in zip(before, model.trainable_variables, strict=True)
    )
    release_ema_at_fit_end(model.optimizer)
    model.optimizer.finalize_variable_values(model.trainable_variables)  # Keras's own: the averages
    averages = [keras.ops.convert_to_numpy(a) for _, a in ema_pairs(model.optimizer)]
    assert all(
        np.array_equal(a, keras.ops.convert_to_numpy(v))
        for a, v in zip(averages, model.trainable_variables, strict=True)
    )


def test_the_efficientnet_builder_has_what_the_lite_variants_use():
    efficientnet, imagenet_utils = efficientnet_builder()
    assert callable(efficientnet.block) and callable(imagenet_utils.correct_pad)
    assert len(efficientnet.DEFAULT_BLOCKS_ARGS) == 7 and "se_ratio" in efficientnet.DEFAULT_BLOCKS_ARGS[0]
    assert efficientnet.CONV_KERNEL_INITIALIZER and efficientnet.DENSE_KERNEL_INITIALIZER


def test_the_registrys_alias_rules_refuse_its_own_names_only():
    assert alias_problem("newest") is None
    assert alias_problem("latest") and alias_problem("v3")


def test_the_optuna_sweeper_internals_are_where_the_resumable_sweeper_takes_them():
    from animalseg.compat.optuna import OptunaSweeperImpl, create_params_from_overrides, storage_models

    assert callable(OptunaSweeperImpl.sweep) and callable(create_params_from_overrides)
    assert storage_models.BaseModel.metadata.tables  # the tables stamp_storage creates
    assert (Path(storage_models.__file__).parent / "alembic").is_dir()  # and the migrations it stamps


def test_a_pyfunc_with_an_explicit_signature_is_defined_without_mlflows_type_hint_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Model(PythonModelWithSignature):
            def predict(self, context, model_input, params=None):
                return model_input

    assert not [w for w in caught if "type hint" in str(w.message)], [str(w.message) for w in caught]
    assert Model().predict(None, [1]) == [1]


def test_a_deprecation_in_our_own_code_fails_the_tests():
    with pytest.raises(DeprecationWarning):
        warnings.warn("a deprecated call of ours", DeprecationWarning, stacklevel=1)


def test_the_backends_resize_takes_a_size_computed_in_a_graph_of_unknown_shapes():
    import tensorflow as tf

    from animalseg.compat.keras import resize_bilinear

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 2), tf.float32)], autograph=False)
    def doubled(x):
        shape = tf.shape(x)
        return resize_bilinear(x, shape[1] * 2, shape[2] * 2)

    x = np.random.default_rng(0).normal(size=(1, 3, 5, 2)).astype("float32")
    expected = keras.ops.convert_to_numpy(keras.ops.image.resize(x, (6, 10), interpolation="bilinear"))
    np.testing.assert_allclose(doubled(x).numpy(), expected, atol=1e-6)


def test_the_profiler_counts_a_models_flops():
    """compat.tensorflow.forward_flops: the TF1 graph profiler still counts a conv's operations."""
    from animalseg.compat.tensorflow import forward_flops

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False)])
    assert forward_flops(model, 8) == 2 * 3 * 3 * 3 * 4 * 8 * 8  # a multiply and an add per weight and pixel
    assert forward_flops(model, 16) == 4 * forward_flops(model, 8)
