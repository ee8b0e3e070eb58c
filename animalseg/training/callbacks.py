"""Callbacks of the training loop, in the order they run at the end of an epoch.

``LearningRateLogger`` and ``EvaluationCallback`` add ``lr`` and the ``val_*`` metrics to the
epoch's logs; the callbacks after them (checkpoints, early stopping, tracking) read those logs.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import keras
import numpy as np

from animalseg.errors import TrainingError
from animalseg.losses.composite import SegmentationLoss
from animalseg.training.distribution import Distribution
from animalseg.training.evaluation import EvaluationResult, Evaluator
from animalseg.training.state import RunState, save_state


class LearningRateLogger(keras.callbacks.Callback):
    """Puts the learning rate used in the epoch into the logs as ``lr``."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = self._lr


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates the whole val split every epoch; keeps the result of the best epoch. On a
    multi-worker run every worker evaluates and all go on with the chief's numbers."""

    def __init__(
        self,
        evaluator: Evaluator,
        loss: SegmentationLoss,
        monitor: str = "val_miou",
        best_value: float | None = None,
        best_epoch: int | None = None,
        distribution: Distribution | None = None,
    ):
        super().__init__()
        self.evaluator = evaluator
        self.loss = loss
        self.monitor = monitor
        self.best_value = -math.inf if best_value is None else best_value
        self.best_epoch = best_epoch  # 0-based
        self.best_result: EvaluationResult | None = None
        self.seconds: list[float] = []
        self.distribution = distribution or Distribution()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        result = self.evaluator.evaluate(self.model, self.loss)
        self.seconds.append(time.perf_counter() - start)
        metrics = self.distribution.chief_metrics(result.metrics())
        if logs is not None:
            logs.update(metrics)
            logs["eval_seconds"] = self.seconds[-1]
        value = metrics[self.monitor]
        if not math.isnan(value) and value > self.best_value:
            self.best_value, self.best_epoch, self.best_result = value, epoch, result


def atomic_save(model: keras.Model, path: Path) -> None:
    """Save ``model`` (with its optimizer state) to ``path`` via a temp file and a rename, so no
    reader, and no kill, ever leaves half a file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temp)
        _fault_injection_pause()
        os.replace(temp, path)
    except OSError as error:
        raise TrainingError(f"cannot write checkpoint {path} ({error}); earlier checkpoints are untouched") from None
    finally:
        temp.unlink(missing_ok=True)


def atomic_link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, or a copy where links are not
    supported), replacing it atomically: a checkpoint written once serves under two names."""
    temp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    try:
        temp.unlink(missing_ok=True)
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    except OSError as error:
        raise TrainingError(f"cannot write {target} ({error}); earlier checkpoints are untouched") from None
    finally:
        temp.unlink(missing_ok=True)


def _fault_injection_pause() -> None:
    """Tests set ANIMALSEG_SAVE_PAUSE (seconds) to kill a run between writing and renaming."""
    pause = os.environ.get("ANIMALSEG_SAVE_PAUSE")
    if pause:
        time.sleep(float(pause))


class CheckpointCallback(keras.callbacks.Callback):
    """Writes ``last.keras`` every epoch and ``best.keras`` when ``monitor`` improves (max)."""

    def __init__(self, directory: str | Path, monitor: str = "val_miou", best_value: float | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.best_value = -math.inf if best_value is None else best_value

    @property
    def best_path(self) -> Path:
        return self.directory / "best.keras"

    @property
    def last_path(self) -> Path:
        return self.directory / "last.keras"

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        atomic_save(self.model, self.last_path)
        value = (logs or {}).get(self.monitor, float("nan"))
        if not np.isnan(value) and value > self.best_value:
            self.best_value = float(value)
            atomic_link(self.last_path, self.best_path)


class NanGuard(keras.callbacks.Callback):
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


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping whose counters survive a resume (``state`` / ``restore``)."""

    def __init__(self, initial: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self._initial = initial or {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        for key in ("wait", "best", "best_epoch"):
            if key in self._initial:
                setattr(self, key, self._initial[key])

    def state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}


class StateCallback(keras.callbacks.Callback):
    """Saves the resume state after every epoch: ``state.json`` naming a hard link to that
    epoch's ``last.keras`` (model + optimizer), so state and weights always belong together and
    the weights are written once. Runs after ``CheckpointCallback``."""

    def __init__(self, directory: Path, state: RunState, evaluation: EvaluationCallback, stateful: dict):
        super().__init__()
        self.directory, self.state, self.evaluation, self.stateful = directory, state, evaluation, stateful

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        previous = self.state.weights
        name = f"resume-{epoch + 1:05d}.keras"
        try:
            atomic_link(self.directory / "last.keras", self.directory / name)
            self.state.epoch = epoch + 1
            self.state.weights = name
            self.state.history.append({k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})
            self.state.best_value = None if math.isinf(self.evaluation.best_value) else self.evaluation.best_value
            self.state.best_epoch = None if self.evaluation.best_epoch is None else self.evaluation.best_epoch + 1
            self.state.callbacks = {key: callback_state(cb) for key, cb in self.stateful.items()}
            save_state(self.directory, self.state)
        except OSError as error:
            raise TrainingError(f"cannot write the resume state in {self.directory} ({error})") from None
        if previous and previous != name:
            (self.directory / previous).unlink(missing_ok=True)


def callback_state(callback: keras.callbacks.Callback) -> dict:
    """The counters of an early-stopping or plateau callback, JSON-ready."""
    if isinstance(callback, ResumableEarlyStopping):
        return callback.state()
    return {
        "wait": int(callback.wait),
        "best": float(callback.best),
        "cooldown_counter": int(callback.cooldown_counter),
    }


def restore_callback(callback: keras.callbacks.Callback, saved: dict) -> None:
    """Put saved counters back into a ReduceLROnPlateau (after its own reset at train begin)."""
    original = callback.on_train_begin

    def on_train_begin(logs=None):
        original(logs)
        for key, value in saved.items():
            setattr(callback, key, value)

    callback.on_train_begin = on_train_begin


class GracefulInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) ends training at the next step boundary with a KeyboardInterrupt, so it
    never lands inside a checkpoint or MLflow write; a second Ctrl-C interrupts at once.
    Use as a context manager around ``fit`` (it installs and restores the handler)."""

    def __init__(self):
        super().__init__()
        self.requested = False
        self._previous = None

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _request(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.requested:
            raise KeyboardInterrupt
