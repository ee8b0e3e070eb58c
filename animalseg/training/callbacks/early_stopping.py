"""Early stopping that survives a resume and the frozen/unfrozen phase boundary."""

from __future__ import annotations

import logging

import keras

from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback
from animalseg.training.callbacks.checkpoint import BEST_CHECKPOINT

log = logging.getLogger(__name__)


class EarlyStopping(keras.callbacks.EarlyStopping, TrainingCallback):
    """Keras's EarlyStopping on ``monitor`` (higher is better), restoring the best weights.

    Keras resets its counters in every ``fit`` and restores the best weights at the end of every
    ``fit`` even without a stop; a run here is several ``fit`` calls (one per phase, one per
    resume), so the counters travel through ``get_state``/``set_state`` and the best weights are
    restored only after a real stop or at the end of the whole training. After a resume the best
    weights are not in memory: they are read back from ``best.keras``.

    The restored weights are the run's final weights: ``restored_epoch`` (1-based) tells the
    trainer, which scores them again and writes them to ``last.keras``, so every final figure
    describes them.
    """

    stage = Stage.DECIDE

    def __init__(self, monitor: str = "val_miou", patience: int = 10, min_delta: float = 0.0, verbose: int = 1):
        super().__init__(
            monitor=monitor,
            mode="max",
            patience=patience,
            min_delta=min_delta,
            verbose=verbose,
            restore_best_weights=True,
        )
        self.needs = (monitor,)
        self.best, self.best_epoch = None, 0
        self.restored_epoch: int | None = None  # 1-based: the epoch whose weights restore_best put back
        self._saved: dict | None = None
        self._best_in_memory = False

    def bind(self, context: FitContext) -> None:
        self._epochs = context.epochs
        self._best_file = context.checkpoint_dir / BEST_CHECKPOINT
        self.set_model(context.model)  # restore_best also runs without a fit (a resume with nothing left)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)  # Keras resets the counters: take the saved ones back
        if self._saved:
            self._take(self._saved)

    def _take(self, saved: dict) -> None:
        self.wait = int(saved["wait"])
        self.best = saved["best"]
        self.best_epoch = int(saved["best_epoch"])
        self.best_weights = saved.get("weights")
        self._best_in_memory = self.best_weights is not None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.best_weights is None and self.best is not None:
            self.best_weights = []  # resumed: keeps Keras from taking this epoch as the best
        super().on_epoch_end(epoch, logs)
        if self.best_epoch == epoch:  # improved (Keras took this epoch's weights)
            self._best_in_memory = True

    def on_train_end(self, logs: dict | None = None) -> None:
        final = self.stopped_epoch > 0 or self.params.get("epochs", 0) >= self._epochs
        if not final:
            return
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        self.restore_best()

    def restore_best(self) -> None:
        """Put the best epoch's weights into the model (from memory, or after a resume from
        ``best.keras``) and set ``restored_epoch``; nothing when no epoch was scored."""
        if self._best_in_memory:
            self.model.set_weights(self.best_weights)
        elif self.best is not None and self._best_file.is_file():
            self.model.load_weights(self._best_file)
        else:
            return
        self.restored_epoch = self.best_epoch + 1
        log.info("Restored the weights of the best epoch (%d, %s %.4f)", self.best_epoch + 1, self.monitor, self.best)

    def get_state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch)}

    def set_state(self, state: dict) -> None:
        self._saved = dict(state)
        if self._best_in_memory:  # into the next phase of the same process: the weights stay valid
            self._saved["weights"] = self.best_weights
        self._take(self._saved)
