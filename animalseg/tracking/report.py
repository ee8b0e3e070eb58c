"""What a finished training leaves in its MLflow run: plots, checkpoints, the best-epoch summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animalseg.data.dataset import SegmentationDataset
from animalseg.data.module import DataModule
from animalseg.losses.composite import SegmentationLoss
from animalseg.models.base import SegmentationModel
from animalseg.tracking.lineage import split_dataset
from animalseg.tracking.mlflow import MlflowTracker
from animalseg.tracking.model import log_inference_model
from animalseg.tracking.naming import OVERRIDES_TAG
from animalseg.tracking.plots import plot_class_iou, plot_confusion, plot_curves, plot_examples
from animalseg.tracking.sections import HEADLINE
from animalseg.training.callbacks import BEST_CHECKPOINT, LAST_CHECKPOINT
from animalseg.training.evaluation import Evaluator
from animalseg.training.trainer import TrainingResult


def write_plots(result: TrainingResult, dataset: SegmentationDataset, directory: Path) -> list[Path]:
    """Training curves, and for the final weights: per-class IoU, confusion matrix, examples."""
    paths = [plot_curves(result.history, directory / "curves.png")]
    final = result.final
    if final is not None:
        iou = {name: final.scores[f"iou_{name}"] for name in dataset.class_names}
        paths.append(plot_class_iou(iou, directory / "class_iou.png"))
        paths.append(plot_confusion(final.confusion, dataset.class_names, directory / "confusion_matrix.png"))
        if final.examples:
            paths.append(plot_examples(final.examples, dataset.colorize, directory / "val_examples.png"))
    return paths


FINAL_WEIGHTS_TAG = "final_weights"


def log_training_outputs(tracker: MlflowTracker, result: TrainingResult, data: DataModule, run_dir: Path) -> None:
    """Plots under ``plots/``; the final (``last.keras``) and best checkpoints under
    ``checkpoints/``; the best epoch's headline metrics as ``best_*`` (selected on val); the final
    weights as the run's MLflow Model (``logger.log_model``), registered when ``logger.register_as``;
    the tag ``final_weights`` says which weights those are. When early stopping restored an
    earlier epoch, its weights are the final ones: their ``val_*`` scores are logged again at the
    last epoch's step, so the run's ``val_*`` (MLflow shows the latest) are theirs too."""
    dataset = data.dataset
    tracker.set_tags({FINAL_WEIGHTS_TAG: result.final_weights})
    if result.restored_epoch is not None:
        tracker.log_metrics(result.metrics, step=result.epochs)
    for path in write_plots(result, dataset, run_dir / "plots"):
        tracker.log_artifact(path, "plots")
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        if (result.checkpoint_dir / name).is_file():
            tracker.log_artifact(result.checkpoint_dir / name, "checkpoints")
    if result.best_epoch is not None:
        summary = {f"best_{k}": v for k, v in result.best_metrics.items() if k in HEADLINE}
        summary["best_epoch"] = result.best_epoch
        tracker.log_metrics(summary, step=result.best_epoch)
    final = result.checkpoint_dir / LAST_CHECKPOINT  # the final weights (EMA or restored ones alike)
    if tracker.log_model and final.is_file():
        image = dataset.load("val", 0)[0] if dataset.ids("val") else np.zeros((32, 32, 3), np.uint8)
        info = log_inference_model(
            final,
            dataset.class_names,
            dataset.colors,
            input_example=image[None, :64, :64],  # small: MLflow stores it as JSON
            register_as=tracker.register_as,
            register_alias=tracker.register_alias,
        )
        tracker.model_id = info.model_id
        tracker.log_model_metrics(result.metrics, result.epochs, split_dataset(dataset, "val"))
        if info.registered_model_version is not None:
            describe_version(tracker, str(info.registered_model_version), result, dataset)


def log_test_scores(
    tracker: MlflowTracker, data: DataModule, model: SegmentationModel, loss: SegmentationLoss, step: int
) -> dict[str, float]:
    """Score the final weights once on the held-out test split as ``test_*`` (nothing is ever
    selected on it); empty when the dataset has no test split."""
    if data.test_split is None:
        return {}
    evaluator = Evaluator(
        data.dataset,
        data.test_split,
        batch_size=data.eval_batch_size,
        num_examples=0,
        boundary_width=data.boundary_width,
    )
    metrics = evaluator.evaluate(model, loss).metrics("test_")
    tracker.log_metrics(metrics, step=step)
    tracker.log_model_metrics(metrics, step, split_dataset(data.dataset, data.test_split), prefix="test_")
    return metrics


def describe_version(
    tracker: MlflowTracker, version: str, result: TrainingResult, dataset: SegmentationDataset
) -> None:
    """The registered version's description and tags: what it is (model, encoder, classes), how
    good (the final weights' val mIoU) and how to train it again (the run's command)."""
    params = tracker.client.get_run(tracker.run_id).data.params
    model = tracker.tags.get("model", params.get("model._target_", "-").rpartition(".")[2])
    encoder = params.get("model.encoder", "none (trained from scratch)")
    miou = result.metrics.get("val_miou", float("nan"))
    command = f"python train.py {tracker.tags.get(OVERRIDES_TAG, '')}".strip()
    description = (
        f"{model}, encoder {encoder}; {len(dataset.class_names)} classes: {', '.join(dataset.class_names)}.\n"
        f"val mIoU {miou:.4f} with the final weights = {result.final_weights}.\n"
        f"Trained by run {tracker.run_id}: {command}"
    )
    client, name = tracker.client, tracker.register_as
    client.update_model_version(name, version, description=description)
    tags = {"model": model, "encoder": encoder, "val_miou": f"{miou:.4f}", "run_id": str(tracker.run_id)}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=f"{model} segmentation of {', '.join(dataset.class_names)}")
