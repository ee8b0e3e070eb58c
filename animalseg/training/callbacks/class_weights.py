"""Class weights that fade to 1 over the first epochs (``loss.class_weight_epochs``)."""

from __future__ import annotations

from animalseg.errors import ConfigError
from animalseg.training.callbacks.base import FitContext, TrainingCallback


class ClassWeightFade(TrainingCallback):
    """Raises the loss's class weights to the power 1 - epoch / ``epochs`` at the start of each
    epoch: the weights as given in the first epoch, every class 1 from epoch ``epochs`` on.

    Why: weights that favour the rare classes make a model find them in a few epochs, but held for
    the whole run they cost the background a third of its IoU (README, "The animals presets");
    plain cross-entropy afterwards keeps the early discovery and gives the background back. The
    fade is geometric (w^s), so the ratios between classes shrink evenly. The exponent follows
    from the epoch alone, so a resumed run or the unfrozen phase continues it exactly.
    """

    provides = ("class_weight_exponent",)

    def __init__(self, epochs: int) -> None:
        super().__init__()
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"loss.class_weight_epochs={epochs}: must be a whole number of epochs >= 1")
        self.epochs = epochs

    def bind(self, context: FitContext) -> None:
        self.losses = context.loss.class_weighted()
        if not self.losses:
            raise ConfigError(
                f"loss.class_weight_epochs={self.epochs}: fades loss.class_weights, and this loss has none; "
                "set loss.class_weights (auto, auto_inverse or a list) or drop loss.class_weight_epochs"
            )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.exponent = max(0.0, 1.0 - epoch / self.epochs)
        for loss in self.losses:
            loss.class_weight_exponent.assign(self.exponent)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["class_weight_exponent"] = self.exponent
