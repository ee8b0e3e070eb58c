"""The trainer: compiles the model and runs ``model.fit`` with the run's callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from animalseg.augment import Augmentation
from animalseg.compat.keras import update_only
from animalseg.data.module import DataModule
from animalseg.errors import DataError
from animalseg.files import atomic_save
from animalseg.losses.composite import SegmentationLoss
from animalseg.training.callbacks import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    EarlyStopping,
    Evaluation,
    FitContext,
    GracefulInterrupt,
    ResumeState,
    TrainingCallback,
    order_callbacks,
)
from animalseg.training.distribution import Distribution
from animalseg.training.evaluation import EvaluationResult
from animalseg.training.state import RunState, save_state


@dataclass
class TrainingJob:
    """The parts one fit needs, as ``animalseg.build.build_run`` makes them from a config."""

    model: keras.Model
    data: DataModule
    loss: SegmentationLoss
    optimizer: Callable[..., keras.optimizers.Optimizer]  # a fresh optimizer (one per run), given extra arguments
    augmentation: Augmentation
    callbacks: list[TrainingCallback] = field(default_factory=list)
    distribution: Distribution = field(default_factory=Distribution)
    seed: int = 0
    jit_compile: bool = False


@dataclass
class TrainingResult:
    """What a finished fit leaves behind: the final weights' metrics lead, the best epoch's
    (selected on the same val split) come second.

    The final weights are the last epoch's, or, when early stopping restored the best epoch's,
    those (``restored_epoch``): ``metrics``, ``final`` and ``last.keras`` all describe them, and
    ``final_weights`` says which they are."""

    history: dict[str, list[float]]
    metrics: dict[str, float]  # the final weights' val_* metrics
    final: EvaluationResult | None
    best_epoch: int | None
    best: EvaluationResult | None
    best_metrics: dict[str, float]
    checkpoint_dir: Path
    epochs: int = 0  # epochs trained (fewer than trainer.epochs after an early stop)
    restored_epoch: int | None = None  # 1-based; None: the final weights are the last epoch's

    @property
    def final_weights(self) -> str:
        """Which weights the final figures describe, as the console and the run's tag say it."""
        if self.restored_epoch is None:
            return f"last epoch ({self.epochs})"
        return f"best epoch {self.restored_epoch} (restored by early stopping after epoch {self.epochs})"


def accumulation(steps: int, ema_momentum: float | None = None) -> dict[str, float | int]:
    """The optimizer arguments that average the gradients of ``steps`` batches per update.

    Keras moves the weight EMA after every batch, also between updates, when the weights do not
    change: the momentum is taken to the ``1/steps`` power so that the average spans as many
    updates as without accumulation."""
    if steps <= 1:
        return {}
    arguments: dict[str, float | int] = {"gradient_accumulation_steps": steps}
    if ema_momentum is not None:
        arguments["ema_momentum"] = float(ema_momentum) ** (1.0 / steps)
    return arguments


class Trainer:
    """Runs ``epochs`` epochs of the Keras loop with the job's callbacks.

    A model whose encoder starts frozen (``model.freeze_encoder_epochs``) trains in two phases,
    recompiled when it unfreezes, with ONE optimizer built over every trainable variable from
    the start: its step, slots and any reduced learning rate go on across the boundary, and a
    checkpoint written in either phase resumes into the same optimizer.
    """

    def __init__(
        self,
        epochs: int = 10,
        accumulate_steps: int = 1,
        monitor: str = "val_miou",
        deterministic: bool = False,
        verbose: int = 0,
    ):
        self.epochs = int(epochs)
        self.accumulate_steps = int(accumulate_steps)
        self.monitor = monitor
        self.deterministic = bool(deterministic)
        self.verbose = int(verbose)

    def fit(self, job: TrainingJob, run_dir: str | Path, state: RunState | None = None) -> TrainingResult:
        """Train ``job.model``; ``state`` (from ``run_dir/checkpoints/state.json``) resumes after its
        last completed epoch: weights, optimizer and schedule step, callback counters, data order
        and history. Only the chief of a multi-worker run writes files."""
        state = state or RunState()
        model, distribution = job.model, job.distribution
        directory = Path(run_dir) / "checkpoints"
        callbacks = [cb for cb in job.callbacks if distribution.is_chief or not cb.chief_only]
        stack = order_callbacks(callbacks + ([ResumeState(callbacks)] if distribution.is_chief else []))
        context = FitContext(
            job.data, job.loss, directory, self.epochs, state, distribution, model, job.augmentation, job.seed
        )
        for callback in stack:
            callback.bind(context)
            if callback.name in state.callbacks:
                callback.set_state(state.callbacks[callback.name])
        unfreeze_at = min(model.freeze_encoder_epochs, self.epochs) if model.encoder_frozen else 0
        optimizer = built = self.build_optimizer(job, stack)
        history: dict[str, list[float]] = {}
        for logs in state.history:
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
        interrupt = GracefulInterrupt()
        resume_from, model.stop_training = state.weights, False  # ResumeState moves state.weights on
        for start, end in ((0, unfreeze_at), (unfreeze_at, self.epochs)):
            start = max(start, state.epoch)
            if start >= end or model.stop_training:  # early stopping ended the first phase
                continue
            if start >= unfreeze_at and model.encoder_frozen:
                model.unfreeze_encoder()
            with distribution.scope():
                model.compile(
                    optimizer=optimizer,
                    jit_compile=job.jit_compile,
                    **job.loss.compile_kwargs(model.semantic_head, model.boundary_head),
                )
                optimizer = model.optimizer  # wrapped in a loss scaler under mixed_float16
                if resume_from:
                    model.load_weights(directory / resume_from)  # weights, optimizer slots and step
                    resume_from = None
            update_only(built, model.trainable_variables)  # JAX: one optimizer, a phase's subset
            with interrupt:  # outside the scope: callbacks (evaluation) run as on one device
                phase = self._fit_phase(job, start, end, [interrupt, *stack])
            for callback in stack:  # Keras resets callback counters in every fit
                callback.set_state(callback.get_state())
            for key, values in phase.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
        stopping = [cb for cb in stack if isinstance(cb, EarlyStopping)]
        if resume_from:  # nothing was left to train (killed after its last epoch): its final weights
            model.load_weights(directory / resume_from)
            for callback in stopping:  # as the last fit's end would have
                callback.restore_best()
        epochs = max((len(values) for values in history.values()), default=0)
        restored = next((cb.restored_epoch for cb in stopping if cb.restored_epoch is not None), None)
        if restored == epochs:  # the best epoch was the last: the same weights
            restored = None
        if distribution.is_chief:
            if restored is not None:  # the restored weights are the final ones: last.keras holds them
                atomic_save(model, directory / LAST_CHECKPOINT)
            state.finished = True
            save_state(directory, state)
        return self._result(history, stack, directory, job, epochs, restored)

    def build_optimizer(self, job: TrainingJob, callbacks: list[TrainingCallback]) -> keras.optimizers.Optimizer:
        """The run's one optimizer, built over all the variables that train in any phase, with
        what the callbacks ask of it (the weight EMA)."""
        model = job.model
        frozen = model.encoder_frozen
        arguments = {key: value for callback in callbacks for key, value in callback.optimizer_arguments().items()}
        arguments.update(accumulation(self.accumulate_steps, arguments.get("ema_momentum")))
        with job.distribution.scope():
            optimizer = job.optimizer(**arguments)
            if frozen:
                model.unfreeze_encoder()
            optimizer.build(model.trainable_variables)
            if frozen:
                model.freeze_encoder()
        return optimizer

    def _fit_phase(self, job: TrainingJob, start: int, end: int, callbacks: list) -> keras.callbacks.History:
        data = job.data
        try:
            return job.model.fit(
                data.train_data(
                    job.augmentation, job.seed, (job.model.semantic_head, job.model.boundary_head), start_epoch=start
                ),
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

    def _result(
        self, history: dict, stack: list, directory: Path, job: TrainingJob, epochs: int, restored: int | None
    ) -> TrainingResult:
        evaluation = next((cb for cb in stack if isinstance(cb, Evaluation)), None)
        final = evaluation.last_result if evaluation and restored is None else None
        if final is None and evaluation is not None and history and job.distribution.is_chief:
            # no epoch ran here, or early stopping restored an earlier epoch: score the final weights
            final = evaluation.evaluator.evaluate(job.model, job.loss)
        best = evaluation.best_result if evaluation else None
        best_epoch = evaluation.best_epoch if evaluation else None
        best_file = directory / BEST_CHECKPOINT
        if best is None and best_epoch is not None and best_file.is_file() and job.distribution.is_chief:
            # the best epoch ran before a resume: score its checkpoint again for the plots
            best = evaluation.evaluator.evaluate(keras.models.load_model(best_file, compile=False), job.loss)
        metrics = {k: v[-1] for k, v in history.items() if k.startswith("val_") and v}
        if restored is not None:  # a worker (no score of its own): the restored epoch's logs
            aligned = {k: v[restored - 1] for k, v in history.items() if k.startswith("val_") and len(v) == epochs}
            metrics = final.metrics() if final is not None else aligned
        return TrainingResult(
            history=history,
            metrics=metrics,
            final=final,
            best_epoch=best_epoch,
            best=best,
            best_metrics=best.metrics() if best is not None else {},
            checkpoint_dir=directory,
            epochs=epochs,
            restored_epoch=restored,
        )
