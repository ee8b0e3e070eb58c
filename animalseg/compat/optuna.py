"""Hydra's Optuna sweeper implementation and Optuna's storage tables.

The resumable sweeper (``animalseg/optuna_sweeper.py``) extends the plugin's implementation
class, which the plugin does not export, and stamps a store's schema version through Optuna's
SQLAlchemy models, which Optuna keeps in a private module.
"""

from __future__ import annotations

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from optuna.storages._rdb import models as storage_models

__all__ = ["OptunaSweeperImpl", "create_params_from_overrides", "storage_models"]
