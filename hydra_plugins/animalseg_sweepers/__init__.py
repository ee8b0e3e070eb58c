"""animalseg's Hydra plugins: Hydra instantiates sweepers only from the ``hydra_plugins`` package."""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    """The Optuna sweeper, resumable from its ``storage`` (animalseg/optuna_sweeper.py); set as
    ``hydra.sweeper._target_`` with the Optuna sweeper's settings unchanged."""

    def __init__(self, **settings: Any) -> None:
        from animalseg.optuna_sweeper import ResumableOptunaSweeperImpl  # Optuna loads only when sweeping

        self.sweeper = ResumableOptunaSweeperImpl(**settings)
