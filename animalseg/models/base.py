"""The base class of every segmentation model: the facts training and prediction ask it for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from animalseg.models.blocks import batchnorm_layers
from animalseg.models.encoders.base import Encoder
from animalseg.models.heads import BOUNDARY_HEAD, SEM_HEAD, segmentation_heads


class SegmentationModel(keras.Model):
    """An encoder, a decoder and the two heads, as a functional ``keras.Model`` subclass.

    The model carries what its users would otherwise guess from the config: ``output_stride``
    (input height and width must be divisible by it), the output names ``semantic_head`` and
    ``boundary_head``, ``num_classes`` and, when known, ``class_names`` and ``class_colors`` (so
    a ``.keras`` file alone is enough to predict), and its encoder freezing schedule
    (``freeze_encoder_epochs``: the model starts frozen when > 0; the trainer unfreezes it).
    ``freeze_encoder_bn`` keeps the encoder's BatchNorm layers in inference mode with their
    pretrained statistics and scales while the rest of the encoder trains: small batches give
    noisy batch statistics, and the moving averages would drift from the ImageNet ones they
    start from. ``inference`` holds how the model predicts (``animalseg.inference.InferenceSettings``
    as a dict: size, TTA, sliding window, post-processing), set by the run that trains it and
    saved with it, so whatever loads the file predicts as the run validated.

    Subclasses build the encoder and decoder from their constructor arguments and list those in
    ``get_config``; ``from_config`` rebuilds from them, never from the functional graph.
    Input: (H, W, 3) images in [0, 255]; outputs: ``sem_logits`` (H, W, num_classes) and
    ``boundary_logits`` (H, W, 1), float32 even under mixed precision.
    """

    semantic_head: str = SEM_HEAD
    boundary_head: str = BOUNDARY_HEAD

    def __init__(
        self,
        encoder: Encoder,
        decoder: Callable[[dict[str, keras.KerasTensor]], keras.KerasTensor],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_colors: Sequence[Sequence[int]] | None = None,
        freeze_encoder_epochs: int = 0,
        name: str | None = None,
        freeze_encoder_bn: bool = False,
    ):
        num_classes = int(num_classes)
        class_names = None if class_names is None else [str(n) for n in class_names]
        class_colors = None if class_colors is None else [[int(v) for v in color] for color in class_colors]
        for key, values in (("class_names", class_names), ("class_colors", class_colors)):
            if values is not None and len(values) != num_classes:
                raise ValueError(f"{key} has {len(values)} entries for {num_classes} classes")
        if int(freeze_encoder_epochs) < 0:
            raise ValueError(f"freeze_encoder_epochs={freeze_encoder_epochs}: must be >= 0")
        inputs = keras.Input((None, None, 3), name="image")
        outputs = segmentation_heads(decoder(encoder(inputs)), num_classes)
        super().__init__(inputs, outputs, name=name)
        self.encoder = encoder
        self.num_classes = num_classes
        self.class_names = class_names
        self.class_colors = class_colors
        self.freeze_encoder_epochs = int(freeze_encoder_epochs)
        self.freeze_encoder_bn = bool(freeze_encoder_bn)
        self.inference: dict[str, Any] | None = None
        if self.freeze_encoder_epochs > 0:
            self.freeze_encoder()
        else:
            self.unfreeze_encoder()

    @property
    def output_stride(self) -> int:
        """The encoder's deepest stride: input height and width must be multiples of it."""
        return self.encoder.output_stride

    @property
    def encoder_frozen(self) -> bool:
        return not self.encoder.trainable

    def freeze_encoder(self) -> None:
        """Stop training the encoder and run it in inference mode (BatchNorm and Dropout alike).
        Recompile afterwards: the trainable weights change."""
        self.encoder.trainable = False

    def unfreeze_encoder(self) -> None:
        """Train the encoder again, its BatchNorm layers too unless ``freeze_encoder_bn``
        (recompile afterwards)."""
        self.encoder.trainable = True
        if self.freeze_encoder_bn:  # Keras runs a non-trainable BatchNorm in inference mode
            for layer in batchnorm_layers(self.encoder):
                layer.trainable = False

    def call(self, inputs, training=None, mask=None):
        for size in inputs.shape[1:3]:  # None (unknown until run) is checked by the graph itself
            if size is not None and size % self.output_stride:
                raise ValueError(
                    f"{self.name}: input size {tuple(inputs.shape[1:3])} is not divisible by its "
                    f"output stride {self.output_stride}; pad or resize the images"
                )
        return super().call(inputs, training=training, mask=mask)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, plus whether the encoder is frozen now: a checkpoint saved after
        unfreezing reloads unfrozen, so its optimizer state matches its trainable weights."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "class_colors": self.class_colors,
            "freeze_encoder_epochs": self.freeze_encoder_epochs,
            "freeze_encoder_bn": self.freeze_encoder_bn,
            "encoder_frozen": self.encoder_frozen,
            "inference": self.inference,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SegmentationModel:
        config = dict(config)
        frozen = config.pop("encoder_frozen", None)
        inference = config.pop("inference", None)
        model = cls(**config)
        model.inference = inference
        if frozen is True:
            model.freeze_encoder()
        elif frozen is False:
            model.unfreeze_encoder()
        return model
