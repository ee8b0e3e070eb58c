"""Whole-split evaluation at the label's native resolution.

Every image is predicted at its own size by a ``Predictor`` (``animalseg.inference``: the resize,
padding, test-time augmentation, sliding window and post-processing the model's settings say) and
scored against its original mask; metrics come from one confusion matrix over the whole split.
The same loop scores an ensemble (``Evaluator.score`` with any predict function).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from animalseg.data.boundary import boundary_target
from animalseg.data.dataset import SegmentationDataset
from animalseg.inference import InferenceSettings, Predictor, settings_of
from animalseg.inference.predictor import cleaned, softmax
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


# images (N, H, W, 3) of one size → masks (N, H, W) and, for the losses, every head's logits (or None)
PredictFunction = Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray] | None]]


class Evaluator:
    """Evaluates a model (``evaluate``) or any predict function (``score``: an ensemble, an
    export) on a whole split of ``dataset`` (see the module docstring). ``settings`` override
    how the model predicts; by default it predicts as its own saved settings say."""

    def __init__(
        self,
        dataset: SegmentationDataset,
        split: str = "val",
        settings: InferenceSettings | None = None,
        batch_size: int = 4,
        num_examples: int = 4,
        boundary_width: int = 1,
        boundary_iou: float | None = DILATION_RATIO,
    ):
        self.dataset = dataset
        self.split = split
        self.settings = settings
        self.batch_size = int(batch_size)
        self.num_examples = int(num_examples)
        self.boundary_width = int(boundary_width)
        self.boundary_iou = boundary_iou  # Boundary IoU's d as a fraction of the diagonal; None = off
        self._predictor: Predictor | None = None
        self._boundary_targets: dict[int, np.ndarray] = {}  # the same masks every epoch: made once
        self._batches: list[list[int]] | None = None

    def predictor(self, model: SegmentationModel) -> Predictor:
        """The model's predictor, made once per model (its compiled forward pass is reused every epoch)."""
        if self._predictor is None or self._predictor.model is not model:
            settings = self.settings or settings_of(model) or InferenceSettings()
            self._predictor = Predictor(model, settings, forward=batch_predictor(model))
        return self._predictor

    def evaluate(self, model: SegmentationModel, loss: SegmentationLoss | None = None) -> EvaluationResult:
        """Predict every image of the split and score it against its original mask."""
        predictor = self.predictor(model)

        def predict(images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            outputs = predictor.outputs(images)
            if not predictor.settings.postprocesses:
                return np.argmax(outputs[model.semantic_head], axis=-1), outputs
            return cleaned(softmax(outputs[model.semantic_head]), images, predictor.settings)[0], outputs

        losses = (
            None if loss is None else (lambda masks, edges, outputs: self._losses(model, loss, masks, edges, outputs))
        )
        return self.score(predict, losses)

    def score(
        self,
        predict: PredictFunction,
        losses: Callable[[np.ndarray, np.ndarray, dict], dict[str, float]] | None = None,
    ) -> EvaluationResult:
        """The split scored with ``predict``, batching images of one size; ``losses`` (masks,
        boundary targets, outputs → named losses) averaged over valid pixels when given."""
        num_classes = self.dataset.num_classes
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        loss_sums: dict[str, float] = defaultdict(float)
        weight_sum = 0.0
        examples = []
        boundary = BoundaryIoU(num_classes, self.dataset.ignore_index, self.boundary_iou) if self.boundary_iou else None
        for indices in self.batches():
            pairs = [self.dataset.load(self.split, i) for i in indices]
            images = np.stack([p[0] for p in pairs])
            masks = np.stack([p[1] for p in pairs])
            prediction, outputs = predict(images)
            confusion += confusion_matrix(masks, prediction, num_classes, self.dataset.ignore_index)
            if boundary is not None:
                for mask, predicted in zip(masks, prediction, strict=True):
                    boundary.update(mask, predicted)
            if losses is not None and outputs is not None:
                valid = float(np.sum(masks != self.dataset.ignore_index))
                edges = np.stack([self._boundary_target(i, m) for i, m in zip(indices, masks, strict=True)])
                for name, value in losses(masks, edges, outputs).items():
                    loss_sums[name] += value * valid
                weight_sum += valid
            for i in range(len(indices)):
                if len(examples) < self.num_examples:
                    examples.append((pairs[i][0], pairs[i][1], prediction[i].astype(np.uint8)))
        scores = segmentation_scores(confusion, self.dataset.class_names)
        if boundary is not None:
            scores.update(boundary.scores(self.dataset.class_names))
        return EvaluationResult(
            confusion, scores, {k: v / max(weight_sum, 1.0) for k, v in loss_sums.items()}, examples
        )

    def batches(self) -> list[list[int]]:
        """The split's image indices in batches of at most ``batch_size`` images of one size, found
        once: finding the sizes reads every mask, which a split decoded from disk would do again
        every epoch."""
        if self._batches is None:
            groups: dict[tuple[int, int], list[int]] = defaultdict(list)
            for index in range(len(self.dataset.ids(self.split))):
                groups[self.dataset.load(self.split, index)[1].shape].append(index)
            self._batches = [
                indices[start : start + self.batch_size]
                for _, indices in sorted(groups.items())
                for start in range(0, len(indices), self.batch_size)
            ]
        return self._batches

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
