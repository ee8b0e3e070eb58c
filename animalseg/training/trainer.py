"""The trainer: compiles the model and runs ``model.fit`` with the framework's callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from animalseg.augment import Augmentation
from animalseg.data.module import DataModule
from animalseg.errors import DataError
from animalseg.losses.composite import SegmentationLoss
from animalseg.tracking.mlflow import MlflowCallback, MlflowTracker
from animalseg.training.callbacks import (
    CheckpointCallback,
    EvaluationCallback,
    GracefulInterrupt,
    LearningRateLogger,
    NanGuard,
    ResumableEarlyStopping,
    StateCallback,
    restore_callback,
)
from animalseg.training.distribution import Distribution
from animalseg.training.evaluation import EvaluationResult, Evaluator
from animalseg.training.state import RunState, save_state


class EpochTimer(keras.callbacks.Callback):
    """Puts the wall time of each epoch (training + evaluation) into the logs."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


@dataclass
class TrainingResult:
    """What a finished fit leaves behind."""

    history: dict[str, list[float]]
    best_epoch: int | None
    best: EvaluationResult | None
    checkpoint_dir: Path
    best_checkpoint: Path
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Runs ``epochs`` epochs of the Keras loop, evaluating the whole val split each epoch and
    keeping ``best.keras`` (by ``monitor``, higher is better) and ``last.keras``.

    ``early_stopping`` (``{patience, min_delta}``) stops when ``monitor`` has not improved for
    ``patience`` epochs and restores the best weights.
    """

    def __init__(
        self,
        epochs: int = 10,
        monitor: str = "val_miou",
        deterministic: bool = False,
        verbose: int = 2,
        num_examples: int = 4,
        early_stopping: Mapping | None = None,
    ):
        self.epochs = int(epochs)
        self.early_stopping = dict(early_stopping) if early_stopping else None
        self.monitor = monitor
        self.deterministic = bool(deterministic)
        self.verbose = int(verbose)
        self.num_examples = int(num_examples)

    def fit(
        self,
        model: keras.Model,
        loss: SegmentationLoss,
        optimizer: Callable[[], keras.optimizers.Optimizer],
        data: DataModule,
        augmentation: Augmentation,
        stride: int,
        seed: int,
        run_dir: str | Path,
        tracker: MlflowTracker | None = None,
        jit_compile: bool = False,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        state: RunState | None = None,
        distribution: Distribution | None = None,
    ) -> TrainingResult:
        """Train ``model`` on ``data`` and return its history and best evaluation.

        ``optimizer`` makes a fresh optimizer; a model with a frozen encoder
        (``model.freeze_encoder_epochs``) trains in two phases, recompiled when it unfreezes.
        ``state`` (from ``run_dir/checkpoints/state.json``) resumes after its last completed
        epoch: weights, optimizer and schedule step, counters, data order and history.
        ``distribution`` (made before ``model``, which was built in its scope) trains on several
        replicas; every worker evaluates, only the chief writes checkpoints and resume state.
        """
        state = state or RunState()
        distribution = distribution or Distribution()
        directory = Path(run_dir) / "checkpoints"
        evaluator = Evaluator(
            data.dataset,
            "val",
            data.eval_size,
            data.eval_batch_size,
            stride,
            self.num_examples,
            data.boundary_width,
        )
        best_epoch = None if state.best_epoch is None else state.best_epoch - 1
        evaluation = EvaluationCallback(evaluator, loss, self.monitor, state.best_value, best_epoch, distribution)
        checkpoints = CheckpointCallback(directory, self.monitor, state.best_value)
        stateful: dict[str, keras.callbacks.Callback] = {}
        for index, callback in enumerate(callbacks):
            if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
                stateful[f"plateau{index}"] = callback
        if self.early_stopping:
            stateful["early_stopping"] = ResumableEarlyStopping(
                initial=state.callbacks.get("early_stopping"),
                monitor=self.monitor,
                mode="max",
                restore_best_weights=True,
                verbose=1,
                **self.early_stopping,
            )
        for name, saved in state.callbacks.items():
            if name in stateful and not isinstance(stateful[name], ResumableEarlyStopping):
                restore_callback(stateful[name], saved)
        interrupt = GracefulInterrupt()
        stack: list[keras.callbacks.Callback] = [
            interrupt,
            LearningRateLogger(),
            evaluation,
            *([checkpoints] if distribution.is_chief else []),
            *callbacks,
            EpochTimer(),
            NanGuard(),
            *([stateful["early_stopping"]] if self.early_stopping else []),
            *([StateCallback(directory, state, evaluation, stateful)] if distribution.is_chief else []),
        ]
        if tracker is not None:
            stack.append(MlflowCallback(tracker))
        unfreeze_at = min(model.freeze_encoder_epochs, self.epochs) if model.encoder_frozen else 0
        history: dict[str, list[float]] = {}
        for logs in state.history:
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
        previous = None
        for start, end in ((0, unfreeze_at), (unfreeze_at, self.epochs)):
            start = max(start, state.epoch)
            if start >= end or (self.early_stopping and model.stop_training):
                continue
            if start >= unfreeze_at and model.encoder_frozen:
                model.unfreeze_encoder()
            with distribution.scope():
                current = optimizer()
                model.compile(optimizer=current, jit_compile=jit_compile, **loss.compile_kwargs())
                if previous is not None:
                    current.iterations.assign(previous.iterations)  # the schedule goes on where it was
                elif state.weights:
                    current.build(model.trainable_variables)
                    model.load_weights(directory / state.weights)  # weights, optimizer slots and step
            with interrupt:  # outside the scope: callbacks (evaluation) run as on one device
                phase = self._fit_phase(model, data, augmentation, seed, start, end, stack)
            previous = current
            for key, values in phase.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
        best = evaluation.best_result
        if distribution.is_chief:
            state.finished = True
            save_state(directory, state)
            if best is None and checkpoints.best_path.is_file():  # the best epoch ran before a resume
                best = evaluator.evaluate(keras.models.load_model(checkpoints.best_path, compile=False), loss)
        best_epoch = evaluation.best_epoch
        return TrainingResult(
            history=history,
            best_epoch=None if best_epoch is None else best_epoch + 1,
            best=best,
            checkpoint_dir=checkpoints.directory,
            best_checkpoint=checkpoints.best_path,
            metrics=best.metrics() if best is not None else {},
        )

    def _fit_phase(self, model, data, augmentation, seed, start, end, callbacks):
        try:
            return model.fit(
                data.train_data(augmentation, seed, start_epoch=start),
                initial_epoch=start,
                epochs=end,
                steps_per_epoch=data.steps_per_epoch,
                callbacks=callbacks,
                verbose=self.verbose,
                shuffle=False,  # the pipeline shuffles (seeded, per epoch)
            )
        except tf.errors.OpError:
            if data.dataset.load_errors:  # a bad file met inside tf.data: say which, not TF's trace
                raise DataError(data.dataset.load_errors[-1].problems) from None
            raise
