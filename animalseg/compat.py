"""Every use of a library's private or internal API, each with why it is needed; tests/test_compat.py
fails loudly on a library version where one of them no longer holds."""

from __future__ import annotations

import mlflow


class PythonModelWithSignature(mlflow.pyfunc.PythonModel):
    """A pyfunc whose signature is given explicitly when it is logged. MLflow checks each
    PythonModel subclass's ``predict`` for type hints when the class is defined, and warns when
    it has none from inside its own ``warnings.catch_warnings`` (no filter of ours reaches it);
    ``_skip_type_hint_validation`` is the attribute MLflow itself sets to skip that check."""

    _skip_type_hint_validation = True
