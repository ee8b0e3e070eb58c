"""Whole-split evaluation at the label's native resolution.

Each image is resized so its long side is ``predict_size`` (or kept as is), padded to the model's
stride, predicted, cropped back, and its logits resized to the original mask size; metrics come
from one confusion matrix over the whole split, against the original masks. Test-time
augmentation (``TestTimeAugmentation``, the ``tta`` config group) predicts several views (scales
of ``predict_size``, mirrored) and averages their probabilities at the native size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from animalseg.data.boundary import boundary_target
from animalseg.data.dataset import SegmentationDataset
from animalseg.errors import ConfigError
from animalseg.losses.composite import SegmentationLoss
from animalseg.metrics.boundary import DILATION_RATIO, BoundaryIoU
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


class TestTimeAugmentation:
    """The views a prediction averages: the image at each of ``scales`` x the prediction size,
    and with ``flip`` each also mirrored left-right. One setting (the ``tta`` config group) for
    per-epoch validation, ``evaluate.py`` and ``predict.py``."""

    __test__ = False  # not a pytest class

    def __init__(self, flip: bool = False, scales: Any = (1.0,)):
        self.flip = bool(flip)
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ConfigError(f"tta.scales={list(self.scales)}: must be a non-empty list of positive numbers")

    @property
    def enabled(self) -> bool:
        """Whether there is more than the plain single view."""
        return self.flip or self.scales != (1.0,)

    def __repr__(self) -> str:
        return f"TestTimeAugmentation(flip={self.flip}, scales={list(self.scales)})"

    def describe(self) -> str:
        views = [f"x{s:g}" for s in self.scales]
        return f"TTA: scales {', '.join(views)}{' + flips' if self.flip else ''}" if self.enabled else "no TTA"


NO_TTA = TestTimeAugmentation()


def predict_native(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    images: np.ndarray,
    geometry: tuple[int, int, int, int],
    native: tuple[int, int],
    flip_tta: bool = False,
    antialias: bool = False,
) -> dict[str, np.ndarray]:
    """Resize and pad images to ``geometry``, ``predict`` them (``batch_predictor(model)``: the
    model's compiled predict step, on any backend), crop the padding and resize every output back
    to the ``native`` size. ``antialias`` low-pass filters the downscale (``data.antialias``)."""
    new_h, new_w, pad_h, pad_w = geometry
    inputs = ops.image.resize(images, (new_h, new_w), interpolation="bilinear", antialias=antialias)
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


def predict_views(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    images: np.ndarray,
    predict_size: int | None,
    stride: int,
    tta: TestTimeAugmentation = NO_TTA,
    antialias: bool = False,
) -> dict[str, np.ndarray]:
    """Every output at the images' native size, averaged over the views of ``tta``.

    Without TTA this is ``predict_native`` at ``predict_size``. With it, each view's outputs are
    turned into probabilities at the native size (softmax over classes; sigmoid for a
    one-channel head), averaged, and returned as logits of the average (log p, log p / (1 - p)),
    so argmax and the losses read them as any logits."""
    height, width = images.shape[1:3]
    if not tta.enabled:
        geometry = prediction_geometry(height, width, predict_size, stride)
        return predict_native(predict, images, geometry, (height, width), antialias=antialias)
    base = predict_size if predict_size is not None else max(height, width)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    sums: dict[str, np.ndarray] = {}
    for scale in tta.scales:
        geometry = prediction_geometry(height, width, max(1, round(base * scale)), stride)
        for flipped in (False, True) if tta.flip else (False,):
            outputs = predict_native(
                predict, mirrored if flipped else images, geometry, (height, width), antialias=antialias
            )
            for key, logits in outputs.items():
                logits = logits[:, :, ::-1] if flipped else logits
                probs = _softmax(logits) if logits.shape[-1] > 1 else 1.0 / (1.0 + np.exp(-logits))
                sums[key] = sums[key] + probs if key in sums else probs
    views = len(tta.scales) * (2 if tta.flip else 1)
    tiny = np.finfo(np.float32).tiny
    result = {}
    for key, total in sums.items():
        mean = np.clip(total / views, tiny, 1.0)
        result[key] = np.log(mean) if mean.shape[-1] > 1 else np.log(mean) - np.log(np.clip(1.0 - mean, tiny, 1.0))
    return {k: v.astype(np.float32) for k, v in result.items()}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


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
        tta: TestTimeAugmentation | None = None,
        antialias: bool = False,
        boundary_iou: float | None = DILATION_RATIO,
    ):
        self.dataset = dataset
        self.split = split
        self.predict_size = predict_size
        self.batch_size = int(batch_size)
        self.stride = int(stride)
        self.num_examples = int(num_examples)
        self.boundary_width = int(boundary_width)
        # flip_tta=True is the older spelling of tta=TestTimeAugmentation(flip=True)
        self.tta = tta if tta is not None else TestTimeAugmentation(flip=flip_tta)
        self.antialias = bool(antialias)
        self.boundary_iou = boundary_iou  # Boundary IoU's d as a fraction of the diagonal; None = off
        self._predictor: tuple[keras.Model, Callable] | None = None
        self._boundary_targets: dict[int, np.ndarray] = {}  # the same masks every epoch: made once

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
        boundary = BoundaryIoU(num_classes, self.dataset.ignore_index, self.boundary_iou) if self.boundary_iou else None
        if self._predictor is None or self._predictor[0] is not model:
            self._predictor = (model, batch_predictor(model))  # compiled once per model, not per epoch
        predict = self._predictor[1]
        for _shape, indices in sorted(self._groups().items()):  # one image size per batch
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                pairs = [self.dataset.load(self.split, i) for i in chunk]
                images = np.stack([p[0] for p in pairs]).astype(np.float32)
                masks = np.stack([p[1] for p in pairs])
                outputs = predict_views(predict, images, self.predict_size, self.stride, self.tta, self.antialias)
                prediction = np.argmax(outputs[model.semantic_head], axis=-1)
                confusion += confusion_matrix(masks, prediction, num_classes, self.dataset.ignore_index)
                if boundary is not None:
                    for mask, predicted in zip(masks, prediction, strict=True):
                        boundary.update(mask, predicted)
                if loss is not None:
                    valid = float(np.sum(masks != self.dataset.ignore_index))
                    edges = np.stack([self._boundary_target(i, m) for i, m in zip(chunk, masks, strict=True)])
                    for name, value in self._losses(model, loss, masks, edges, outputs).items():
                        loss_sums[name] += value * valid
                    weight_sum += valid
                for i in range(len(chunk)):
                    if len(examples) < self.num_examples:
                        examples.append((pairs[i][0], pairs[i][1], prediction[i].astype(np.uint8)))
        losses = {k: v / max(weight_sum, 1.0) for k, v in loss_sums.items()}
        scores = segmentation_scores(confusion, self.dataset.class_names)
        if boundary is not None:
            scores.update(boundary.scores(self.dataset.class_names))
        return EvaluationResult(confusion, scores, losses, examples)

    def _boundary_target(self, index: int, mask: np.ndarray) -> np.ndarray:
        if index not in self._boundary_targets:
            target = boundary_target(mask, self.boundary_width, self.dataset.ignore_index).numpy()
            self._boundary_targets[index] = target.astype(np.uint8)  # 0, 1 or ignore: a quarter of float32
        return self._boundary_targets[index].astype(np.float32)

    def _losses(
        self,
        model: SegmentationModel,
        loss: SegmentationLoss,
        masks: np.ndarray,
        boundary: np.ndarray,
        outputs: dict,
    ) -> dict[str, float]:
        sem = float(loss.semantic(masks.astype(np.int32), outputs[model.semantic_head]))
        edge = float(loss.boundary(boundary, outputs[model.boundary_head]))
        return {
            "loss": sem + loss.boundary_weight * edge,
            f"{model.semantic_head}_loss": sem,
            f"{model.boundary_head}_loss": edge,
        }
