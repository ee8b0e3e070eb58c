"""The callbacks of a run (the ``callbacks`` config group builds them; see ``base`` for the protocol)."""

from animalseg.training.callbacks.base import FitContext, Stage, TrainingCallback, order_callbacks
from animalseg.training.callbacks.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, Checkpoint
from animalseg.training.callbacks.class_weights import ClassWeightFade
from animalseg.training.callbacks.early_stopping import EarlyStopping
from animalseg.training.callbacks.ema import EmaWeights
from animalseg.training.callbacks.evaluation import Evaluation
from animalseg.training.callbacks.monitoring import (
    EpochLine,
    EpochTimer,
    GracefulInterrupt,
    LearningRateLogger,
    NanGuard,
)
from animalseg.training.callbacks.resume import ResumeState

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "Checkpoint",
    "ClassWeightFade",
    "EarlyStopping",
    "EmaWeights",
    "EpochLine",
    "EpochTimer",
    "Evaluation",
    "FitContext",
    "GracefulInterrupt",
    "LearningRateLogger",
    "NanGuard",
    "ResumeState",
    "Stage",
    "TrainingCallback",
    "order_callbacks",
]
