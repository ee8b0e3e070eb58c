"""Where the project lives, for configs that name files relative to it."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from animalseg.errors import ConfigError


def project_root() -> str:
    """The folder that holds ``conf/train.yaml``: ``$ANIMALSEG_ROOT``, else the checkout this
    package sits in, else the current directory."""
    if os.environ.get("ANIMALSEG_ROOT"):
        return str(Path(os.environ["ANIMALSEG_ROOT"]).resolve())
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "conf" / "train.yaml").is_file():
        return str(checkout)
    return str(Path.cwd())


def register_resolvers() -> None:
    """Make ``${project_root:}`` available to the configs."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", project_root)


def require_writable(directory: str | Path, key: str) -> Path:
    """Create ``directory`` and check a file can be written there, else a ConfigError naming ``key``."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write_test{os.getpid()}"  # per process: workers share run dirs
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"{key}={directory}: cannot write there ({error.strerror})") from None
    return directory
