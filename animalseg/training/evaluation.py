"""Whole-split evaluation at the label's native resolution.

Each image is resized so its long side is ``predict_size`` (or kept as is), padded to the model's
stride, predicted, cropped back, and its logits resized to the original mask size; metrics come
from one confusion matrix over the whole split, against the original masks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from animalseg.data.boundary import boundary_target
from animalseg.data.dataset import SegmentationDataset
from animalseg.losses.composite import SegmentationLoss
from animalseg.metrics.confusion import confusion_matrix, segmentation_scores
from animalseg.models.base import SegmentationModel
from animalseg.training.distribution import batch_predictor


@dataclass
class EvaluationResult:
    """Scores, losses and the confusion matrix of one pass over a split."""

    confusion: np.ndarray
    scores: dict[str, float]
    losses: dict[str, float]
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def metrics(self, prefix: str = "val_") -> dict[str, float]:
        """Flat metric dict for Keras logs and MLflow (``val_miou``, ``val_loss``, ...)."""
        return {f"{prefix}{k}": v for k, v in {**self.losses, **self.scores}.items()}


def prediction_geometry(height, width, predict_size: int | None, stride: int) -> tuple:
    """(resized h, resized w, padded h, padded w) for an image of ``height`` x ``width``: the long
    side scaled to ``predict_size`` (rounded half to even), then padded up to a multiple of ``stride``.

    Python ints give ints; scalar int32 tensors (an exported graph, which learns the input size only
    when it runs) give tensors, so exported models compute the very same geometry. ``h * size / long``
    is one correctly rounded division, exact in float32 for any image under 32k pixels a side."""
    if predict_size is None:
        new_h, new_w = height, width
    else:
        longest = ops.cast(ops.maximum(height, width), "float32")

        def scaled(side):
            return ops.maximum(1, ops.cast(ops.round(ops.cast(side * predict_size, "float32") / longest), "int32"))

        new_h, new_w = scaled(height), scaled(width)
    geometry = (new_h, new_w, (new_h + stride - 1) // stride * stride, (new_w + stride - 1) // stride * stride)
    return tuple(int(v) for v in geometry) if isinstance(height, (int, np.integer)) else geometry


def predict_native(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    images: np.ndarray,
    geometry: tuple[int, int, int, int],
    native: tuple[int, int],
    flip_tta: bool = False,
) -> dict[str, np.ndarray]:
    """Resize and pad images to ``geometry``, ``predict`` them (``batch_predictor(model)``: the
    model's compiled predict step, on any backend), crop the padding and resize every output back
    to the ``native`` size."""
    new_h, new_w, pad_h, pad_w = geometry
    inputs = ops.image.resize(images, (new_h, new_w), interpolation="bilinear")
    inputs = ops.convert_to_numpy(ops.pad(inputs, [[0, 0], [0, pad_h - new_h], [0, pad_w - new_w], [0, 0]]))
    outputs = predict(inputs)
    if flip_tta:
        flipped = predict(np.ascontiguousarray(inputs[:, :, ::-1]))
        outputs = {k: (v + flipped[k][:, :, ::-1]) / 2.0 for k, v in outputs.items()}
    return {
        k: ops.convert_to_numpy(
            ops.image.resize(ops.cast(v[:, :new_h, :new_w], "float32"), native, interpolation="bilinear")
        )
        for k, v in outputs.items()
    }


class Evaluator:
    """Evaluates a model on a whole split of ``dataset`` (see the module docstring)."""

    def __init__(
        self,
        dataset: SegmentationDataset,
        split: str = "val",
        predict_size: int | None = None,
        batch_size: int = 4,
        stride: int = 16,
        num_examples: int = 4,
        boundary_width: int = 1,
        flip_tta: bool = False,
    ):
        self.dataset = dataset
        self.split = split
        self.predict_size = predict_size
        self.batch_size = int(batch_size)
        self.stride = int(stride)
        self.num_examples = int(num_examples)
        self.boundary_width = int(boundary_width)
        self.flip_tta = bool(flip_tta)
        self._predictor: tuple[keras.Model, Callable] | None = None

    def _groups(self) -> dict[tuple[int, int], list[int]]:
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index in range(len(self.dataset.ids(self.split))):
            mask = self.dataset.load(self.split, index)[1]
            groups[mask.shape].append(index)
        return groups

    def evaluate(self, model: SegmentationModel, loss: SegmentationLoss | None = None) -> EvaluationResult:
        """Predict every image of the split and score it against its original mask."""
        num_classes = self.dataset.num_classes
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        loss_sums: dict[str, float] = defaultdict(float)
        weight_sum = 0.0
        examples = []
        if self._predictor is None or self._predictor[0] is not model:
            self._predictor = (model, batch_predictor(model))  # compiled once per model, not per epoch
        predict = self._predictor[1]
        for (height, width), indices in sorted(self._groups().items()):
            geometry = prediction_geometry(height, width, self.predict_size, self.stride)
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                pairs = [self.dataset.load(self.split, i) for i in chunk]
                images = np.stack([p[0] for p in pairs]).astype(np.float32)
                masks = np.stack([p[1] for p in pairs])
                outputs = predict_native(predict, images, geometry, (height, width), self.flip_tta)
                prediction = np.argmax(outputs[model.semantic_head], axis=-1)
                confusion += confusion_matrix(masks, prediction, num_classes, self.dataset.ignore_index)
                if loss is not None:
                    valid = float(np.sum(masks != self.dataset.ignore_index))
                    for name, value in self._losses(model, loss, masks, outputs).items():
                        loss_sums[name] += value * valid
                    weight_sum += valid
                for i in range(len(chunk)):
                    if len(examples) < self.num_examples:
                        examples.append((pairs[i][0], pairs[i][1], prediction[i].astype(np.uint8)))
        losses = {k: v / max(weight_sum, 1.0) for k, v in loss_sums.items()}
        return EvaluationResult(confusion, segmentation_scores(confusion, self.dataset.class_names), losses, examples)

    def _losses(
        self, model: SegmentationModel, loss: SegmentationLoss, masks: np.ndarray, outputs: dict
    ) -> dict[str, float]:
        ignore = self.dataset.ignore_index
        boundary = np.stack([boundary_target(m, self.boundary_width, ignore).numpy() for m in masks])
        sem = float(loss.semantic(masks.astype(np.int32), outputs[model.semantic_head]))
        edge = float(loss.boundary(boundary, outputs[model.boundary_head]))
        return {
            "loss": sem + loss.boundary_weight * edge,
            f"{model.semantic_head}_loss": sem,
            f"{model.boundary_head}_loss": edge,
        }
