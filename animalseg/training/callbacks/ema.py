"""The optimizer's weight EMA as the weights a run evaluates, checkpoints and reports."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from animalseg.compat.keras import ema_pairs, hold_ema_at_fit_end, release_ema_at_fit_end
from animalseg.errors import ConfigError
from animalseg.numbers import is_number
from animalseg.training.batchnorm import recompute_batchnorm
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback


def ema_optimizer(model: keras.Model) -> keras.optimizers.Optimizer | None:
    """The optimizer of ``model`` that keeps a weight EMA (inside a loss-scale wrapper), or None."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return optimizer if getattr(optimizer, "use_ema", False) else None


class EmaWeights(TrainingCallback):
    """Has the optimizer keep a moving average of the weights (Keras's ``use_ema`` with
    ``ema_momentum=momentum``: average = momentum x average + (1 - momentum) x weights after every
    step) and, at the end of every epoch, puts the averages into the model, so evaluation,
    checkpoints and the final weights are the EMA weights; at the start of the next epoch, puts
    the training weights back.

    The two are swapped, not copied: while the model holds the EMA, the optimizer's average
    variables hold the training weights, so ``last.keras`` (model + optimizer) carries both and a
    resume swaps them back exactly (``get_state`` says which way round the checkpoint is).

    Why not ``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)``: on TensorFlow it swaps by
    ``a + b - b`` arithmetic, which rounds, so the training weights drift by a rounding error at
    every epoch; and at the end of each ``fit`` it overwrites the averages with the EMA, losing the
    training weights, while a run here continues in another ``fit`` (the unfrozen phase, a resume).
    For the same reason ``fit``'s own ``optimizer.finalize_variable_values`` (which copies the
    averages into the model, and with a frozen encoder fails on the variable count) is turned off
    while this callback runs: the swap already did its job.

    The average covers the trainable variables only, so the EMA weights would be scored with
    BatchNorm statistics gathered under the training weights. ``recompute_bn`` re-estimates them
    for the EMA weights after every swap (``True``) or after the last epoch's only (``"last"``:
    the final weights, for one epoch's forward pass in the whole run), from the epoch's training batches
    (``animalseg.training.batchnorm``; ``ema_bn_seconds`` in the logs): one forward pass over
    an epoch. Training does not read them (BatchNorm normalises by batch statistics there, and a
    frozen one keeps its own), so the training weights train on as without it.
    """

    stage = Stage.WEIGHTS

    def __init__(self, momentum: float = 0.99, recompute_bn: bool | str = False) -> None:
        super().__init__()
        # 1 would keep the first step's weights for ever, 0 the current ones: neither is an average
        if not (is_number(momentum) and 0 < momentum < 1):
            raise ValueError(f"momentum={momentum!r}: must be a number in (0, 1), e.g. 0.99")
        if recompute_bn not in (True, False, "last"):
            raise ValueError(f"recompute_bn={recompute_bn!r}: must be true, false or last")
        self.momentum = float(momentum)
        self.recompute_bn = recompute_bn
        self.provides = ("model_weights", "ema_bn_seconds") if self.recompute_bn else ("model_weights",)
        self.ema_in_model = False

    def bind(self, context: FitContext) -> None:
        self.context = context

    def optimizer_arguments(self) -> dict[str, Any]:
        return {"use_ema": True, "ema_momentum": self.momentum}

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.optimizer = ema_optimizer(self.model)
        if self.optimizer is None:
            raise ConfigError(
                f"callbacks.{self.name or 'ema'}: the optimizer keeps no EMA; "
                "build the optimizer with the callbacks' optimizer_arguments (animalseg.training.trainer.Trainer does)"
            )
        hold_ema_at_fit_end(self.optimizer)

    def on_train_end(self, logs: dict | None = None) -> None:
        release_ema_at_fit_end(self.optimizer)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.ema_in_model:
            self._swap()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.ema_in_model:
            self._swap()
            if self.recompute_bn is True or (self.recompute_bn == "last" and epoch + 1 == self.context.epochs):
                start = time.perf_counter()
                recompute_batchnorm(self.model, self.context.training_batches(epoch))
                if logs is not None:
                    logs["ema_bn_seconds"] = time.perf_counter() - start

    def _swap(self) -> None:
        """Exchange model and average values through host copies (exact, no arithmetic)."""
        optimizer = self.optimizer
        for variable, average in ema_pairs(optimizer):
            if average is None:
                continue
            current = np.array(keras.ops.convert_to_numpy(variable))
            variable.assign(average)
            average.assign(current)
        self.ema_in_model = not self.ema_in_model

    def get_state(self) -> dict[str, Any]:
        return {"ema_in_model": self.ema_in_model}

    def set_state(self, state: dict[str, Any]) -> None:
        self.ema_in_model = bool(state.get("ema_in_model", False))
