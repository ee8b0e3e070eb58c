"""The resume state written after every epoch (used by the trainer, not configured)."""

from __future__ import annotations

from animalseg.errors import TrainingError
from animalseg.files import atomic_link
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback
from animalseg.training.callbacks.checkpoint import LAST_CHECKPOINT
from animalseg.training.state import save_state


class ResumeState(TrainingCallback):
    """Saves ``state.json`` after every epoch, naming a hard link to that epoch's ``last.keras``
    (model + optimizer), so state and weights always belong together; with the epoch's logs and
    every callback's ``get_state()``: at the last stage, after every callback has had the epoch."""

    name = "resume_state"
    stage = Stage.RESUME
    provides = ("state.json",)
    needs = (LAST_CHECKPOINT,)
    chief_only = True

    @property
    def label(self) -> str:
        return "the trainer's resume state"

    def __init__(self, callbacks: list[TrainingCallback]):
        super().__init__()
        self.callbacks = callbacks

    def bind(self, context: FitContext) -> None:
        self.directory, self.state = context.checkpoint_dir, context.state

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        previous = self.state.weights
        name = f"resume-{epoch + 1:05d}.keras"
        try:
            atomic_link(self.directory / LAST_CHECKPOINT, self.directory / name)
            self.state.epoch = epoch + 1
            self.state.weights = name
            self.state.history.append({k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})
            self.state.callbacks = {cb.name: cb.get_state() for cb in self.callbacks if cb.get_state()}
            save_state(self.directory, self.state)
        except OSError as error:
            raise TrainingError(f"cannot write the resume state in {self.directory} ({error})") from None
        if previous and previous != name:
            (self.directory / previous).unlink(missing_ok=True)
