"""``last.keras`` every epoch and ``best.keras`` when the monitored metric improves."""

from __future__ import annotations

import math
from pathlib import Path

from animalseg.files import atomic_link, atomic_save
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback

LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"


class Checkpoint(TrainingCallback):
    """Writes the model with its optimizer state to ``last.keras`` after every epoch, atomically,
    and makes ``best.keras`` a hard link to it when ``monitor`` improves (higher is better), so
    each epoch's weights are written once. It runs at the save stage, after every callback that
    changes the weights or the optimizer (the EMA swap, a plateau's reduced rate)."""

    stage = Stage.SAVE
    provides = (LAST_CHECKPOINT, BEST_CHECKPOINT)
    chief_only = True

    def __init__(self, monitor: str = "val_miou"):
        super().__init__()
        self.monitor = monitor
        self.needs = (monitor,)
        self.best_value = -math.inf
        self.directory = Path()

    def bind(self, context: FitContext) -> None:
        self.directory = context.checkpoint_dir

    @property
    def best_path(self) -> Path:
        return self.directory / BEST_CHECKPOINT

    @property
    def last_path(self) -> Path:
        return self.directory / LAST_CHECKPOINT

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        atomic_save(self.model, self.last_path)
        value = (logs or {}).get(self.monitor, math.nan)
        if not math.isnan(value) and value > self.best_value:
            self.best_value = float(value)
            atomic_link(self.last_path, self.best_path)

    def get_state(self) -> dict:
        return {"best_value": None if math.isinf(self.best_value) else self.best_value}

    def set_state(self, state: dict) -> None:
        best = state.get("best_value")
        self.best_value = -math.inf if best is None else float(best)
