"""Callbacks that watch the loop: the learning rate and epoch time in the logs, a NaN guard, Ctrl-C."""

from __future__ import annotations

import math
import signal
import threading
import time

import keras

from animalseg.errors import TrainingError
from animalseg.training.callbacks.base import TrainingCallback


class LearningRateLogger(TrainingCallback):
    """Puts the learning rate used in the epoch into the logs as ``lr``."""

    provides = ("lr",)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = self._lr


class EpochTimer(TrainingCallback):
    """Puts the wall time of each epoch (training and the epoch-end work before it, evaluation
    included) into the logs as ``epoch_seconds``."""

    provides = ("epoch_seconds",)
    needs = ("*",)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class NanGuard(TrainingCallback):
    """Stops at the first NaN or infinite loss with a message naming the epoch and step."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"the training loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}; "
                "the last good checkpoints are kept (lower optimizer.learning_rate or check the data)"
            )


class GracefulInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) or a SIGTERM (``kill``, ``timeout``, a batch scheduler) ends training at
    the next step boundary with a KeyboardInterrupt, so it never lands inside a checkpoint or
    MLflow write and the run is marked KILLED, not left RUNNING; a second signal of the same
    kind acts at once. The trainer puts it first and uses it as a context manager around ``fit``."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._request) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _request(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signum, self._previous[signum])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.requested:
            raise KeyboardInterrupt
