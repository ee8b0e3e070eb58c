"""What a finished training leaves in its MLflow run: plots, best checkpoint, summary."""

from __future__ import annotations

from pathlib import Path

from animalseg.data.dataset import SegmentationDataset
from animalseg.tracking.mlflow import MlflowTracker
from animalseg.tracking.plots import plot_class_iou, plot_confusion, plot_curves, plot_examples
from animalseg.training.trainer import TrainingResult


def write_plots(result: TrainingResult, dataset: SegmentationDataset, directory: Path) -> list[Path]:
    """Training curves, and for the best epoch: per-class IoU, confusion matrix, examples."""
    paths = [plot_curves(result.history, directory / "curves.png")]
    best = result.best
    if best is not None:
        iou = {name: best.scores[f"iou_{name}"] for name in dataset.class_names}
        paths.append(plot_class_iou(iou, directory / "class_iou.png"))
        paths.append(plot_confusion(best.confusion, dataset.class_names, directory / "confusion_matrix.png"))
        if best.examples:
            paths.append(plot_examples(best.examples, dataset.colorize, directory / "val_examples.png"))
    return paths


def log_training_outputs(
    tracker: MlflowTracker, result: TrainingResult, dataset: SegmentationDataset, run_dir: Path
) -> None:
    """Plots under ``plots/``, the best checkpoint under ``checkpoints/``, best-epoch summary."""
    for path in write_plots(result, dataset, run_dir / "plots"):
        tracker.log_artifact(path, "plots")
    if result.best_checkpoint.is_file():
        tracker.log_artifact(result.best_checkpoint, "checkpoints")
    if result.best_epoch is not None:
        summary = {f"best_{k}": v for k, v in result.metrics.items()}
        summary["best_epoch"] = result.best_epoch
        tracker.log_metrics(summary, step=result.best_epoch)
