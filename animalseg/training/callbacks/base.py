"""The protocol every callback of a run follows, and the one rule that orders them.

The rule: at the end of an epoch the callbacks run by ``stage`` (``Stage``: the weights are
chosen, then measured, then acted on, saved, reported, and the resume state written), and in
config order within a stage.
A callback says which log entries it ``provides`` and which it ``needs`` (patterns such as
``val_*``); the trainer refuses a stack where a need is provided by no callback that runs before
it. A callback with counters to resume returns them from ``get_state`` and takes them back in
``set_state``; the trainer saves them with the run's resume state and hands them back on resume
and across the frozen/unfrozen phases. One that needs an optimizer feature (the weight EMA)
asks for it in ``optimizer_arguments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from animalseg.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf

    from animalseg.augment import Augmentation
    from animalseg.data.module import DataModule
    from animalseg.losses.composite import SegmentationLoss
    from animalseg.training.distribution import Distribution
    from animalseg.training.state import RunState


@dataclass
class FitContext:
    """What the trainer hands every callback before training (``TrainingCallback.bind``)."""

    data: DataModule
    loss: SegmentationLoss
    checkpoint_dir: Path
    epochs: int
    state: RunState
    distribution: Distribution
    model: keras.Model
    augmentation: Augmentation
    seed: int

    def training_batches(self, epoch: int) -> tf.data.Dataset:
        """The training batches of ``epoch`` (0-based), the same ones the fit takes in it."""
        heads = (self.model.semantic_head, self.model.boundary_head)
        batches = self.data.train_data(self.augmentation, self.seed, heads, start_epoch=epoch)
        return batches.take(self.data.steps_per_epoch)


class Stage(IntEnum):
    """When a callback's epoch-end work runs (see the module docstring)."""

    WEIGHTS = 0  # chooses the weights the epoch ends with (the EMA swap)
    MEASURE = 1  # puts numbers into the logs (evaluation, the learning rate)
    DECIDE = 2  # acts on them (a plateau's rate, early stopping)
    SAVE = 3  # writes the checkpoints
    REPORT = 4  # reports the finished epoch (its time, the console line, MLflow)
    RESUME = 5  # the trainer's resume state: the epoch's logs and every callback's counters, last


class TrainingCallback(keras.callbacks.Callback):
    """A Keras callback with a stage, what it provides and needs, and, if it has any, its state."""

    stage: Stage = Stage.REPORT
    provides: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    chief_only: bool = False  # writes files or logs: runs only on the chief of a multi-worker run
    name: str = ""  # its key under ``callbacks`` in the config; set by the instantiator

    @property
    def label(self) -> str:
        """How errors name it: its config key."""
        return f"callbacks.{self.name or type(self).__name__}"

    def check(self, loss: SegmentationLoss) -> None:
        """Refuse, with a ``ConfigError``, a loss this callback cannot work with: called when the
        run is built, before anything is written."""

    def bind(self, context: FitContext) -> None:
        """Receive the run's parts (data, loss, checkpoint folder, ...) before training."""

    def optimizer_arguments(self) -> dict[str, Any]:
        """Arguments the run's optimizer must be built with for this callback to work."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """Counters to save with the resume state; ``{}`` for a stateless callback."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Take back what ``get_state`` returned (after a resume, or into the next phase)."""


def order_callbacks(callbacks: list[TrainingCallback]) -> list[TrainingCallback]:
    """The callbacks by stage, in the given order within one; a ConfigError names a need that no
    callback before it provides."""
    ordered = sorted(callbacks, key=lambda callback: callback.stage)  # stable: config order within a stage
    for position, callback in enumerate(ordered):
        for need in callback.needs:
            if not any(fnmatchcase(need, pattern) for other in ordered[:position] for pattern in other.provides):
                raise ConfigError(
                    f"{callback.label} needs {need}, which no callback before "
                    "it provides: put back the one that does ('callbacks=[default,...]' keeps the default ones), "
                    "or give a callback of yours that provides it an earlier stage"
                )
    return ordered
