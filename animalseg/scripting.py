"""Helpers for scripts that take train.py's Hydra overrides without starting a Hydra run."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from animalseg.cli import EXIT_USAGE
from animalseg.errors import AnimalsegError
from animalseg.paths import project_root, register_resolvers


def compose_from_argv(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config ``python train.py <overrides>`` would run, composed with the compose API."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(Path(project_root()) / "conf"), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def exit_on_user_error(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Print config/data errors as one line each and return exit code 2 (no traceback)."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> int:
        try:
            return main(argv)
        except (AnimalsegError, HydraException, OmegaConfBaseException) as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            problems = error.problems if isinstance(error, AnimalsegError) else [str(error)]
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return error.exit_code if isinstance(error, AnimalsegError) else EXIT_USAGE

    return wrapped
