"""The private library APIs animalseg relies on (animalseg/compat.py) still behave as it assumes."""

from __future__ import annotations

import warnings

from animalseg.compat import PythonModelWithSignature


def test_a_pyfunc_with_an_explicit_signature_is_defined_without_mlflows_type_hint_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Model(PythonModelWithSignature):
            def predict(self, context, model_input, params=None):
                return model_input

    assert not [w for w in caught if "type hint" in str(w.message)], [str(w.message) for w in caught]
    assert Model().predict(None, [1]) == [1]
