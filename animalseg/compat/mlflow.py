"""MLflow internals: the registry's alias rules and the pyfunc type-hint check."""

from __future__ import annotations

import mlflow


def alias_problem(alias: str) -> str | None:
    """Why the registry would refuse ``alias`` (``latest`` and ``v<number>`` are its own names
    for versions), or None; MLflow's checks live in ``mlflow.utils.validation`` only."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as error:
        return error.message
    return None


class PythonModelWithSignature(mlflow.pyfunc.PythonModel):
    """A pyfunc whose signature is given explicitly when it is logged. MLflow checks each
    PythonModel subclass's ``predict`` for type hints when the class is defined, and warns when
    it has none from inside its own ``warnings.catch_warnings`` (no filter of ours reaches it);
    ``_skip_type_hint_validation`` is the attribute MLflow itself sets to skip that check."""

    _skip_type_hint_validation = True
