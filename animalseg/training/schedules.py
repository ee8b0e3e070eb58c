"""Learning-rate schedules written in epochs and converted to optimizer steps."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


def constant(learning_rate: float, steps_per_epoch: int) -> float:
    """The same learning rate throughout."""
    return float(learning_rate)


def cosine(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 0.0,
    final_fraction: float = 0.0,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 over ``warmup_epochs``, then cosine decay to ``final_fraction``."""
    warmup = round(warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate,
        decay_steps=max(1, epochs * steps_per_epoch - warmup),
        alpha=final_fraction,
        warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="animalseg")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate`` over ``warmup_steps``, then a factor at each boundary.

    Keras's ``PiecewiseConstantDecay`` has no warm-up, hence this schedule.
    """

    def __init__(
        self,
        learning_rate: float,
        warmup_steps: int,
        boundaries: Sequence[int],
        factors: Sequence[float],
    ):
        if len(boundaries) != len(factors):
            raise ValueError("boundaries and factors must have the same length")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.factors = [float(f) for f in factors]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        if self.warmup_steps > 0:
            rate = rate * ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        for boundary, factor in zip(self.boundaries, self.factors, strict=True):
            rate = ops.where(step >= float(boundary), self.learning_rate * factor, rate)
        return rate

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "boundaries": self.boundaries,
            "factors": self.factors,
        }


def warmup_step(
    learning_rate: float,
    steps_per_epoch: int,
    warmup_epochs: float = 5,
    milestones: Sequence[int] = (50, 100),
    factors: Sequence[float] = (0.5, 0.1),
) -> WarmupStepDecay:
    """The report's schedule: warm-up over ``warmup_epochs``, x``factors`` at ``milestones``
    (epochs; each factor multiplies the base rate, e.g. x0.5 at 50 then x0.1 at 100)."""
    return WarmupStepDecay(
        learning_rate,
        round(warmup_epochs * steps_per_epoch),
        [int(m) * steps_per_epoch for m in milestones],
        list(factors),
    )
