"""Per-epoch evaluation of the whole val split: the ``val_*`` metrics the other callbacks read."""

from __future__ import annotations

import math
import time

from animalseg.metrics.boundary import DILATION_RATIO
from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback
from animalseg.training.evaluation import EvaluationResult, Evaluator


class Evaluation(TrainingCallback):
    """Evaluates ``split`` at native resolution after every epoch, predicting as the model's own
    inference settings say (size, TTA, sliding window, post-processing), and puts ``val_*`` (scores and
    losses) and ``eval_seconds`` into the logs; keeps the final and the best epoch's results
    (by ``monitor``, higher is better). On a multi-worker run every worker evaluates and all go on
    with the chief's numbers, so decisions taken from them cannot diverge."""

    stage = Stage.MEASURE
    provides = ("val_*", "eval_seconds")

    def __init__(
        self,
        monitor: str = "val_miou",
        split: str = "val",
        num_examples: int = 4,
        boundary_iou: float | None = DILATION_RATIO,
    ):
        super().__init__()
        self.boundary_iou = boundary_iou
        self.monitor = monitor
        self.split = split
        self.num_examples = int(num_examples)
        self.best_value = -math.inf
        self.best_epoch: int | None = None  # 1-based
        self.best_result: EvaluationResult | None = None
        self.last_result: EvaluationResult | None = None

    def bind(self, context: FitContext) -> None:
        data = context.data
        self.context = context
        self.evaluator = Evaluator(
            data.dataset,
            self.split,
            batch_size=data.eval_batch_size,
            num_examples=self.num_examples,
            boundary_width=data.boundary_width,
            boundary_iou=self.boundary_iou,
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        result = self.evaluator.evaluate(self.model, self.context.loss)
        seconds = time.perf_counter() - start
        metrics = self.context.distribution.chief_metrics(result.metrics())
        if logs is not None:
            logs.update(metrics)
            logs["eval_seconds"] = seconds
        self.last_result = result
        value = metrics[self.monitor]
        if not math.isnan(value) and value > self.best_value:
            self.best_value, self.best_epoch, self.best_result = value, epoch + 1, result

    def get_state(self) -> dict:
        return {"best_value": None if math.isinf(self.best_value) else self.best_value, "best_epoch": self.best_epoch}

    def set_state(self, state: dict) -> None:
        best = state.get("best_value")
        self.best_value = -math.inf if best is None else float(best)
        self.best_epoch = state.get("best_epoch")
