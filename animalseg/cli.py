"""What the thin entry points call: errors the user can fix are printed, not raised."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from animalseg.errors import AnimalsegError

EXIT_USAGE = 2


def report_errors(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Wrap a Hydra task: an ``AnimalsegError`` prints one line per problem and exits with 2
    (in a multirun the job is reported and the sweep goes on); ``HYDRA_FULL_ERROR=1`` re-raises."""

    def wrapped(cfg: DictConfig) -> object:
        try:
            return task(cfg)
        except AnimalsegError as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            for problem in error.problems:
                print(f"error: {problem}", file=sys.stderr)
            multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            if multirun:
                return None
            raise SystemExit(EXIT_USAGE) from None

    return wrapped
