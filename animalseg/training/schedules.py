"""Learning-rate schedules written in epochs and converted to optimizer steps.

Each factory takes the base ``learning_rate`` and ``steps_per_epoch`` (plus its own knobs from
the ``schedule`` config group) and returns a ``Schedule``: what the optimizer's
``learning_rate`` is, and any callbacks the schedule needs (``plateau`` reacts to val_miou).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
from keras import ops

from animalseg.errors import ConfigError
from animalseg.training.callbacks.base import Stage, TrainingCallback


@dataclass
class Schedule:
    """The optimizer's learning rate (a number or a step schedule) and its callbacks."""

    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
    callbacks: list[TrainingCallback] = field(default_factory=list)


def constant(learning_rate: float, steps_per_epoch: int) -> Schedule:
    """The same learning rate throughout."""
    return Schedule(float(learning_rate))


def plateau(
    learning_rate: float,
    steps_per_epoch: int,
    monitor: str = "val_miou",
    factor: float = 0.5,
    patience: int = 5,
    min_learning_rate: float = 1e-6,
    min_delta: float = 0.0,
) -> Schedule:
    """Start at the base rate; multiply it by ``factor`` when ``monitor`` has not improved by
    more than ``min_delta`` (higher is better) for ``patience`` epochs."""
    callback = Plateau(
        monitor=monitor, factor=factor, patience=patience, min_lr=min_learning_rate, min_delta=min_delta, verbose=1
    )
    return Schedule(float(learning_rate), [callback])


class Plateau(keras.callbacks.ReduceLROnPlateau, TrainingCallback):
    """Keras's ReduceLROnPlateau (higher is better) whose counters survive a resume and the
    frozen/unfrozen phase boundary; the reduced rate itself lives in the optimizer, which the
    checkpoint saves and which the trainer keeps across phases."""

    name = "plateau"
    stage = Stage.DECIDE  # before the checkpoint saves the optimizer with the new rate
    provides = ("learning_rate",)

    def __init__(self, monitor: str = "val_miou", **kwargs):
        super().__init__(monitor=monitor, mode="max", **kwargs)
        self.needs = (monitor,)
        self._saved: dict = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)  # Keras resets its counters here
        for key, value in self._saved.items():
            setattr(self, key, value)

    def get_state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "cooldown_counter": int(self.cooldown_counter)}

    def set_state(self, state: dict) -> None:
        self._saved = dict(state)


def _warmup_cosine(start: float, peak: float, warmup: int, total: int, final_fraction: float) -> Schedule:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup`` steps, then cosine decay to
    ``final_fraction * peak`` at step ``total`` (Keras's CosineDecay)."""
    return Schedule(
        keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=start if warmup else peak,
            decay_steps=max(1, total - warmup),
            alpha=final_fraction,
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    )


def onecycle(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One-cycle: linear warm-up from ``learning_rate / div_factor`` to ``learning_rate`` over
    ``pct_start`` of training, then cosine annealing to ``learning_rate / final_div_factor``."""
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, round(pct_start * total))
    return _warmup_cosine(learning_rate / div_factor, learning_rate, warmup, total, 1.0 / final_div_factor)


def cosine(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 0.0,
    final_fraction: float = 0.0,
    decay_fraction: float = 1.0,
) -> Schedule:
    """Linear warm-up from 0 over ``warmup_epochs``, then cosine decay to ``final_fraction`` of
    the rate, reached after ``decay_fraction`` of the ``epochs`` and held from there on."""
    if not 0.0 < decay_fraction <= 1.0:
        raise ConfigError(f"schedule.decay_fraction={decay_fraction}: must be in (0, 1]")
    warmup = round(warmup_epochs * steps_per_epoch)
    total = max(1, round(decay_fraction * epochs * steps_per_epoch))
    return _warmup_cosine(0.0, learning_rate, warmup, total, final_fraction)


@keras.saving.register_keras_serializable(package="animalseg")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to where ``decay`` starts over ``warmup_steps``, then ``decay``
    counted from the end of the warm-up.

    Keras has a warm-up only inside ``CosineDecay``; this puts one in front of any schedule
    (``PolynomialDecay`` here).
    """

    def __init__(self, decay: keras.optimizers.schedules.LearningRateSchedule, warmup_steps: int):
        self.decay = decay
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.decay(ops.maximum(step - self.warmup_steps, 0.0))  # the peak while warming up
        if self.warmup_steps <= 0:
            return rate
        return rate * ops.minimum(1.0, step / self.warmup_steps)

    def get_config(self) -> dict:
        return {"decay": keras.saving.serialize_keras_object(self.decay), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config: dict) -> LinearWarmup:
        return cls(keras.saving.deserialize_keras_object(config["decay"]), config["warmup_steps"])


def poly(
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 0.0,
    power: float = 2.0,
    final_fraction: float = 0.0,
) -> Schedule:
    """Linear warm-up from 0 over ``warmup_epochs``, then polynomial decay, rate x (1 - t)^power,
    to ``final_fraction`` of the rate at the last epoch (DeepLab's "poly" has power 0.9). Power 2
    is at a quarter of the rate by mid-run, where the cosine is still at a half, and still anneals
    to zero at the end."""
    if power <= 0:
        raise ConfigError(f"schedule.power={power}: must be > 0")
    warmup = round(warmup_epochs * steps_per_epoch)
    decay = keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=learning_rate,
        decay_steps=max(1, epochs * steps_per_epoch - warmup),
        end_learning_rate=learning_rate * final_fraction,
        power=power,
    )
    return Schedule(LinearWarmup(decay, warmup))


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
) -> Schedule:
    """The report's schedule: warm-up over ``warmup_epochs``, x``factors`` at ``milestones``
    (epochs; each factor multiplies the base rate, e.g. x0.5 at 50 then x0.1 at 100)."""
    return Schedule(
        WarmupStepDecay(
            learning_rate,
            round(warmup_epochs * steps_per_epoch),
            [int(m) * steps_per_epoch for m in milestones],
            list(factors),
        )
    )
