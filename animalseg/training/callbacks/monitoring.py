"""Callbacks that watch the loop: the learning rate and epoch time in the logs, the console's
line per epoch, a NaN guard, Ctrl-C."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time

import keras

from animalseg.errors import TrainingError
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback


class LearningRateLogger(TrainingCallback):
    """Puts the learning rate the epoch trained with into the logs as ``lr``: the mean of the
    rates its steps used. The rate read at the epoch's start is the next step's only, which
    during a warm-up from 0 reads as "not training"."""

    stage = Stage.MEASURE
    provides = ("lr",)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._rates: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            rates = self._rates or [float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))]
            logs["lr"] = sum(rates) / len(rates)


class EpochTimer(TrainingCallback):
    """Puts the wall time of each epoch (training and the epoch-end work before it, evaluation
    included) into the logs as ``epoch_seconds``."""

    provides = ("epoch_seconds",)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class EpochLine(TrainingCallback):
    """One compact console line per epoch: the loss, val mIoU, the lowest class, the rate and
    the time (every metric stays in MLflow and train.log); on a terminal, the step within a
    long epoch on a line that the epoch's line then replaces."""

    chief_only = True
    REFRESH_SECONDS = 1.0

    def __init__(self, progress: bool | None = None):
        super().__init__()
        self.progress = sys.stdout.isatty() if progress is None else bool(progress)
        self._epochs = 0

    def bind(self, context: FitContext) -> None:
        self._epochs = context.epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._shown = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if self.progress and now - self._shown >= self.REFRESH_SECONDS:
            self._shown = now
            steps = (self.params or {}).get("steps") or "?"
            loss = (logs or {}).get("loss")
            shown = f"  loss {float(loss):.4f}" if loss is not None else ""
            print(f"\r  step {batch + 1}/{steps}{shown}", end="", flush=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.progress:
            print("\r\033[K", end="")
        print(epoch_line(epoch + 1, self._epochs or (self.params or {}).get("epochs", 0), logs or {}), flush=True)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """``epoch  3/30  loss 0.4123  val_miou 0.8123  lowest lion 0.7012  lr 9.5e-04  41 s``."""
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}"]
    if "loss" in logs:
        parts.append(f"loss {float(logs['loss']):.4f}")
    if "val_miou" in logs:
        parts.append(f"val_miou {float(logs['val_miou']):.4f}")
    classes = {k.removeprefix("val_iou_"): float(v) for k, v in logs.items() if k.startswith("val_iou_")}
    scored = {name: value for name, value in classes.items() if math.isfinite(value)}
    if scored:
        lowest = min(scored, key=scored.get)
        parts.append(f"lowest {lowest} {scored[lowest]:.4f}")
    if "lr" in logs:
        parts.append(f"lr {float(logs['lr']):.2e}")
    if "epoch_seconds" in logs:
        parts.append(f"{float(logs['epoch_seconds']):.0f} s")
    return "  ".join(parts)


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
