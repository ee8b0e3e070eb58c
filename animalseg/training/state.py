"""The resume state of a run directory, written atomically after every completed epoch.

``state.json`` names the checkpoint (model + optimizer, ``resume-<epoch>.keras``, a hard link to
that epoch's ``last.keras``) that belongs to it, so a kill at any moment leaves a consistent pair:
the state is replaced only after its checkpoint is complete, and older ones are removed after.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "state.json"


@dataclass
class RunState:
    """Everything a resumed run needs besides the weights."""

    epoch: int = 0  # completed epochs
    weights: str | None = None  # file name in the checkpoint folder
    mlflow_run_id: str | None = None
    finished: bool = False
    history: list[dict[str, float]] = field(default_factory=list)  # one dict of logs per epoch
    best_value: float | None = None
    best_epoch: int | None = None  # 1-based
    callbacks: dict[str, dict] = field(default_factory=dict)  # early stopping, plateau, ...


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file, fsync and rename."""
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def read_state(directory: Path) -> RunState | None:
    """The saved state of ``directory`` (a checkpoint folder), or None for a fresh run."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    return RunState(**json.loads(path.read_text(encoding="utf-8")))


def save_state(directory: Path, state: RunState) -> None:
    write_atomic(directory / STATE_FILE, json.dumps(asdict(state), indent=1))
