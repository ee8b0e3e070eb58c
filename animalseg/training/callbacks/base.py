"""The protocol every callback of a run follows, and the order the trainer runs them in.

A callback says what it ``provides`` to the epoch's logs (``val_*``, ``lr``, ``last.keras``) and
what it ``needs`` from the others (``val_miou``; ``*`` for everything the others provide), and
what it runs ``after`` when some callback provides it (``model_weights``: evaluate the weights
an EMA callback swapped in), without requiring it. The
trainer orders the stack from these declarations, not from list position, and refuses a stack
where something needed is provided by no callback. A callback with counters to resume returns
them from ``get_state`` and takes them back in ``set_state``; the trainer saves them with the
run's resume state and hands them back on resume and across the frozen/unfrozen phases.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class TrainingCallback(keras.callbacks.Callback):
    """A Keras callback that declares its place in the stack and, if it has any, its state."""

    provides: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # like needs, but none of them is required
    chief_only: bool = False  # writes files or logs: runs only on the chief of a multi-worker run
    name: str = ""  # its key under ``callbacks`` in the config; set by the instantiator

    def bind(self, context: FitContext) -> None:
        """Receive the run's parts (data, loss, checkpoint folder, ...) before training."""

    def get_state(self) -> dict[str, Any]:
        """Counters to save with the resume state; ``{}`` for a stateless callback."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Take back what ``get_state`` returned (after a resume, or into the next phase)."""


def _needs_everything(callback: TrainingCallback) -> bool:
    return "*" in callback.needs


def _depends_on(callback: TrainingCallback, other: TrainingCallback) -> bool:
    """Whether ``callback`` must run after ``other`` at the end of an epoch."""
    if not other.provides or other is callback:
        return False
    wanted = (*callback.needs, *callback.after)
    if any(fnmatchcase(need, pattern) for need in wanted for pattern in other.provides):
        return True
    # "*": after every provider, except peers that also need everything (unless it provides nothing)
    return _needs_everything(callback) and (not _needs_everything(other) or not callback.provides)


def order_callbacks(callbacks: list[TrainingCallback]) -> list[TrainingCallback]:
    """The callbacks ordered so each runs after those whose outputs it needs (config order for
    the rest); a ConfigError names a need that no callback provides, or a cycle."""
    for callback in callbacks:
        for need in callback.needs:
            if need != "*" and not any(fnmatchcase(need, pattern) for other in callbacks for pattern in other.provides):
                raise ConfigError(
                    f"callbacks.{callback.name or type(callback).__name__} needs {need}, which no callback provides "
                    "(put the callback that provides it back, e.g. callbacks=default)"
                )
    ordered: list[TrainingCallback] = []
    pending = list(callbacks)
    while pending:
        ready = next(
            (c for c in pending if not any(_depends_on(c, other) for other in pending if other is not c)), None
        )
        if ready is None:
            names = ", ".join(c.name or type(c).__name__ for c in pending)
            raise ConfigError(f"callbacks: {names} need each other's outputs; no order satisfies them")
        ordered.append(ready)
        pending.remove(ready)
    return ordered
