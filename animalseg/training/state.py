"""The resume state of a run directory, written atomically after every completed epoch.

``state.json`` names the checkpoint (model + optimizer, ``resume-<epoch>.keras``, a hard link to
that epoch's ``last.keras``) that belongs to it, so a kill at any moment leaves a consistent pair:
the state is replaced only after its checkpoint is complete, and older ones are removed after.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from animalseg.files import write_atomic

STATE_FILE = "state.json"


@dataclass
class RunState:
    """Everything a resumed run needs besides the weights."""

    epoch: int = 0  # completed epochs
    weights: str | None = None  # file name in the checkpoint folder
    mlflow_run_id: str | None = None
    finished: bool = False  # every epoch trained
    reported: bool = False  # and the run's outputs logged, its MLflow run closed: nothing left to do
    final_weights: str | None = None  # which weights the reported figures describe (TrainingResult.final_weights)
    final_metrics: dict[str, float] = field(default_factory=dict)  # and their val_* metrics
    history: list[dict[str, float]] = field(default_factory=list)  # one dict of logs per epoch
    callbacks: dict[str, dict] = field(default_factory=dict)  # each callback's get_state(), by name


def read_state(directory: Path) -> RunState | None:
    """The saved state of ``directory`` (a checkpoint folder), or None for a fresh run."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved.setdefault("reported", saved.get("finished", False))  # a state from before "reported" existed
    return RunState(**{f.name: saved[f.name] for f in fields(RunState) if f.name in saved})


def save_state(directory: Path, state: RunState) -> None:
    write_atomic(directory / STATE_FILE, json.dumps(asdict(state), indent=1))
