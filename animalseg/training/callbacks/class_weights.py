"""Class weights that fade to 1 over the first epochs (``callbacks=[default,class_weight_fade]``)."""

from __future__ import annotations

import keras

from animalseg.errors import ConfigError
from animalseg.losses.composite import SegmentationLoss
from animalseg.losses.weighting import ClassWeighted
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback


class ClassWeightFade(TrainingCallback):
    """Raises the loss's class weights to the power 1 - epoch / ``epochs`` at the start of each
    epoch: the weights as given in the first epoch, every class weighted 1 from epoch ``epochs`` on.

    Why: weights that favour the rare classes make a model find them in a few epochs, but held for
    the whole run they cost the background a third of its IoU (docs/changelog.md, "The animals presets");
    unweighted afterwards, the model keeps the early start and the background comes back. The
    fade is geometric (w^s), so the ratios between classes shrink evenly. The exponent follows
    from the epoch alone, so a resumed run or the unfrozen phase continues it exactly.
    """

    stage = Stage.MEASURE
    provides = ("class_weight_exponent",)

    def __init__(self, epochs: int = 6) -> None:
        super().__init__()
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs={epochs!r}: must be a whole number >= 1")
        self.epochs = epochs
        self.losses: list[ClassWeighted] = []
        self.exponent = 1.0

    def check(self, loss: SegmentationLoss) -> None:
        if not loss.class_weighted():
            raise ConfigError(
                f"{self.label}: fades the loss's class weights and it has none; "
                "set loss.class_weights (auto, auto_share, auto_inverse or a list) or drop the callback"
            )

    def bind(self, context: FitContext) -> None:
        self.check(context.loss)
        self.losses = context.loss.class_weighted()
        # the exponent of the last epoch run: a run resumed with no epoch left scores with it
        self._set(max(context.state.epoch - 1, 0))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._set(epoch)
        if keras.backend.backend() != "tensorflow":
            # a JAX-compiled step holds the value it was traced with (a TF step reads the variable)
            self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["class_weight_exponent"] = self.exponent

    def _set(self, epoch: int) -> None:
        self.exponent = max(0.0, 1.0 - epoch / self.epochs)
        for loss in self.losses:
            loss.class_weight_exponent.assign(self.exponent)
