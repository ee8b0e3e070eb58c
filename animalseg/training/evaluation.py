"""Whole-split evaluation at the label's native resolution.

Each image is resized so its long side is ``predict_size`` (or kept as is), padded to the model's
stride, predicted, cropped back, and its logits resized to the original mask size; metrics come
from one confusion matrix over the whole split, against the original masks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from animalseg.data.boundary import boundary_target
from animalseg.data.dataset import SegmentationDataset
from animalseg.losses.composite import SegmentationLoss
from animalseg.metrics.confusion import confusion_matrix, segmentation_scores
from animalseg.models.heads import BOUNDARY_HEAD, SEM_HEAD


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


def prediction_geometry(height: int, width: int, predict_size: int | None, stride: int) -> tuple[int, int, int, int]:
    """(resized h, resized w, padded h, padded w) for an image of ``height`` x ``width``."""
    scale = 1.0 if predict_size is None else predict_size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, math.ceil(new_h / stride) * stride, math.ceil(new_w / stride) * stride


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
        self._predict = None
        self._model = None

    def _groups(self) -> dict[tuple[int, int], list[int]]:
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index in range(len(self.dataset.ids(self.split))):
            mask = self.dataset.load(self.split, index)[1]
            groups[mask.shape].append(index)
        return groups

    def _predict_fn(self, model: keras.Model):
        if self._model is not model:
            flip = self.flip_tta

            @tf.function(reduce_retracing=True)
            def predict(images, resized, padded, native):
                inputs = tf.image.resize(images, resized, method="bilinear")
                pad = padded - resized
                inputs = tf.pad(inputs, [[0, 0], [0, pad[0]], [0, pad[1]], [0, 0]])
                outputs = model(inputs, training=False)
                if flip:
                    flipped = model(inputs[:, :, ::-1], training=False)
                    outputs = {k: (v + flipped[k][:, :, ::-1]) / 2.0 for k, v in outputs.items()}
                return {
                    k: tf.image.resize(tf.cast(v[:, : resized[0], : resized[1]], tf.float32), native, "bilinear")
                    for k, v in outputs.items()
                }

            self._predict, self._model = predict, model
        return self._predict

    def evaluate(self, model: keras.Model, loss: SegmentationLoss | None = None) -> EvaluationResult:
        """Predict every image of the split and score it against its original mask."""
        num_classes = self.dataset.num_classes
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        loss_sums: dict[str, float] = defaultdict(float)
        weight_sum = 0.0
        examples = []
        predict = self._predict_fn(model)
        for (height, width), indices in sorted(self._groups().items()):
            new_h, new_w, pad_h, pad_w = prediction_geometry(height, width, self.predict_size, self.stride)
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                pairs = [self.dataset.load(self.split, i) for i in chunk]
                images = np.stack([p[0] for p in pairs]).astype(np.float32)
                masks = np.stack([p[1] for p in pairs])
                outputs = predict(
                    tf.constant(images),
                    tf.constant([new_h, new_w]),
                    tf.constant([pad_h, pad_w]),
                    tf.constant([height, width]),
                )
                prediction = np.argmax(outputs[SEM_HEAD].numpy(), axis=-1)
                confusion += confusion_matrix(masks, prediction, num_classes, self.dataset.ignore_index)
                if loss is not None:
                    valid = float(np.sum(masks != self.dataset.ignore_index))
                    for name, value in self._losses(loss, masks, outputs).items():
                        loss_sums[name] += value * valid
                    weight_sum += valid
                for i in range(len(chunk)):
                    if len(examples) < self.num_examples:
                        examples.append((pairs[i][0], pairs[i][1], prediction[i].astype(np.uint8)))
        losses = {k: v / max(weight_sum, 1.0) for k, v in loss_sums.items()}
        return EvaluationResult(confusion, segmentation_scores(confusion, self.dataset.class_names), losses, examples)

    def _losses(self, loss: SegmentationLoss, masks: np.ndarray, outputs: dict) -> dict[str, float]:
        ignore = self.dataset.ignore_index
        boundary = tf.stack([boundary_target(m, self.boundary_width, ignore) for m in masks])
        sem = float(loss.semantic(masks.astype(np.int32), outputs[SEM_HEAD]))
        edge = float(loss.boundary(boundary, outputs[BOUNDARY_HEAD]))
        return {
            "loss": sem + loss.boundary_weight * edge,
            f"{SEM_HEAD}_loss": sem,
            f"{BOUNDARY_HEAD}_loss": edge,
        }
