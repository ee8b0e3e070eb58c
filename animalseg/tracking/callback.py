"""MLflow logging as one of the run's callbacks (``callbacks.mlflow``)."""

from __future__ import annotations

from animalseg.tracking.mlflow import MlflowTracker
from animalseg.training.callbacks.base import TrainingCallback


class MlflowLogger(TrainingCallback):
    """Logs every number in the epoch's logs to the run's tracker, at step = epoch (1-based).
    ``tracker`` is the run's own, handed over when the callbacks are built."""

    chief_only = True

    def __init__(self, tracker: MlflowTracker | None = None):
        super().__init__()
        self.tracker = tracker

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.tracker is not None:
            self.tracker.log_metrics(logs or {}, step=epoch + 1)
