"""Callbacks of the training loop, in the order they run at the end of an epoch.

``LearningRateLogger`` and ``EvaluationCallback`` add ``lr`` and the ``val_*`` metrics to the
epoch's logs; the callbacks after them (checkpoints, early stopping, tracking) read those logs.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from animalseg.losses.composite import SegmentationLoss
from animalseg.training.evaluation import EvaluationResult, Evaluator


class LearningRateLogger(keras.callbacks.Callback):
    """Puts the learning rate used in the epoch into the logs as ``lr``."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = self._lr


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates the whole val split every epoch; keeps the result of the best epoch."""

    def __init__(self, evaluator: Evaluator, loss: SegmentationLoss, monitor: str = "val_miou"):
        super().__init__()
        self.evaluator = evaluator
        self.loss = loss
        self.monitor = monitor
        self.best_value = -math.inf
        self.best_epoch: int | None = None
        self.best_result: EvaluationResult | None = None
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        result = self.evaluator.evaluate(self.model, self.loss)
        self.seconds.append(time.perf_counter() - start)
        metrics = result.metrics()
        if logs is not None:
            logs.update(metrics)
            logs["eval_seconds"] = self.seconds[-1]
        value = metrics[self.monitor]
        if not math.isnan(value) and value > self.best_value:
            self.best_value, self.best_epoch, self.best_result = value, epoch, result


def atomic_save(model: keras.Model, path: Path) -> None:
    """Save ``model`` to ``path`` via a temp file and a rename, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


class CheckpointCallback(keras.callbacks.Callback):
    """Writes ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves (max)."""

    def __init__(self, directory: str | Path, monitor: str = "val_miou"):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.best_value = -math.inf

    @property
    def best_path(self) -> Path:
        return self.directory / "best.keras"

    @property
    def last_path(self) -> Path:
        return self.directory / "last.keras"

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor, float("nan"))
        if not np.isnan(value) and value > self.best_value:
            self.best_value = float(value)
            atomic_save(self.model, self.best_path)
        atomic_save(self.model, self.last_path)
