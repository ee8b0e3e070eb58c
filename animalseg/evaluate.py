"""``evaluate.py``: score a checkpoint on a dataset split at native resolution."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.build import build_data
from animalseg.data.dataset import SegmentationDataset
from animalseg.errors import ConfigError
from animalseg.inference import TrainedModel, finite, tta_setting
from animalseg.metrics.confusion import confusion_matrix, segmentation_scores
from animalseg.sources import KerasSettings, KerasSource, Source, ensemble_outputs, load_sources
from animalseg.tracking.plots import plot_class_iou, plot_confusion
from animalseg.training.evaluation import Evaluator

log = logging.getLogger(__name__)


def data_config(cfg: DictConfig, run_config: DictConfig | None) -> DictConfig:
    """The training run's data config (so numbers match training), with this command's
    ``data.*`` overrides on top; the composed ``data`` when the run's config is unknown."""
    if run_config is None or not cfg.use_run_config:
        return cfg.data
    data = OmegaConf.create(OmegaConf.to_container(run_config.data, resolve=True))
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    for override in overrides:
        key = override.partition("=")[0]
        if key.startswith("data."):
            OmegaConf.update(data, key[len("data.") :], OmegaConf.select(cfg, key), merge=True)
        elif key == "data":
            return cfg.data
    return data


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate one model or an ensemble (mean probabilities), print per-class IoU, mIoU and pixel
    accuracy, plot, log when asked, and end with one JSON line of the scores."""
    out = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracking_uri = cfg.logger.tracking_uri

    def keras_settings(trained: TrainedModel) -> KerasSettings:
        data_cfg = data_config(cfg, trained.run_config)
        return KerasSettings(
            data_cfg.eval_size, tta_setting(cfg, trained.run_config), bool(data_cfg.get("antialias", False))
        )

    sources = load_sources(cfg, keras_settings)
    first = sources[0]
    tta = first.settings.tta if isinstance(first, KerasSource) else tta_setting(cfg, None)
    data = build_data(data_config(cfg, first.run_config))
    dataset = data.dataset
    if dataset.num_classes != first.num_classes:
        raise ConfigError(
            f"data: the dataset has {dataset.num_classes} classes, {first.label} predicts {first.num_classes}; "
            "pick the data it was trained on (e.g. data=animals)"
        )
    keras_model = first.trained.model if len(sources) == 1 and first.trained is not None else None
    started = time.perf_counter()  # the cost of the scoring itself (TTA's cost is read from it)
    if keras_model is not None:  # the evaluation training runs, flip TTA included
        evaluator = Evaluator(
            dataset,
            cfg.split,
            data.eval_size,
            data.eval_batch_size,
            keras_model.output_stride,
            num_examples=0,
            boundary_width=data.boundary_width,
            tta=tta,
            antialias=data.antialias,
        )
        confusion = evaluator.evaluate(keras_model).confusion
    elif tta.enabled and not all(isinstance(source, KerasSource) for source in sources):
        raise ConfigError(f"tta: {tta.describe()} takes Keras models (run_id= or .keras checkpoints), not exports")
    else:
        confusion = score_sources(sources, dataset, cfg.split, data.eval_batch_size)
    seconds = time.perf_counter() - started
    scores = segmentation_scores(confusion, dataset.class_names)
    prefix = f"eval_{cfg.split}{'_tta' if tta.enabled else ''}_"
    metrics = {f"{prefix}{k}": v for k, v in scores.items()}
    num_images = len(dataset.ids(cfg.split))
    label = str(first.trained.checkpoint) if keras_model is not None else " + ".join(s.label for s in sources)
    print(
        f"\n{label} on {cfg.split} ({num_images} images, native resolution"
        f"{', ' + tta.describe() if tta.enabled else ''})"
    )
    for name in dataset.class_names:
        print(f"  IoU {name:<16}{finite(scores[f'iou_{name}'])}")
    print(f"  mIoU                {finite(scores['miou'])}")
    print(f"  pixel accuracy      {finite(scores['pixel_accuracy'])}")
    per_image = 1000 * seconds / max(num_images, 1)
    print(f"  time                {seconds:.1f} s, {per_image:.0f} ms per image (model loading excluded)")
    plots = [
        plot_confusion(confusion, dataset.class_names, out / f"{prefix}confusion_matrix.png"),
        plot_class_iou({n: scores[f"iou_{n}"] for n in dataset.class_names}, out / f"{prefix}class_iou.png"),
    ]
    print(f"Plots: {', '.join(str(p) for p in plots)}")
    run_id = first.run_id if len(sources) == 1 else None
    if cfg.log_to_mlflow:  # into the trained run when known, else a run of its own
        tracker = instantiate(cfg.logger, run_name=None if run_id else f"evaluate {cfg.split}")
        tracker.start(run_id=run_id)
        tracker.log_metrics(metrics, step=0)
        for plot in plots:
            tracker.log_artifact(plot, "evaluation")
        tracker.finish()
        print(f"Logged to MLflow ({tracking_uri})")
    print(json.dumps(summary_line(scores, dataset.class_names, cfg.split, sources) | {"seconds": round(seconds, 3)}))
    return metrics


def score_sources(sources: list[Source], dataset: SegmentationDataset, split: str, batch_size: int) -> np.ndarray:
    """The confusion matrix of the sources' (mean) prediction over ``split``, at native resolution,
    batching images of one size as the Evaluator does."""
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for _, indices in sorted(Evaluator(dataset, split)._groups().items()):
        for start in range(0, len(indices), batch_size):
            pairs = [dataset.load(split, i) for i in indices[start : start + batch_size]]
            masks = ensemble_outputs(sources, np.stack([p[0] for p in pairs]))[0]
            confusion += confusion_matrix(
                np.stack([p[1] for p in pairs]), masks, dataset.num_classes, dataset.ignore_index
            )
    return confusion


def summary_line(scores: dict[str, float], class_names: list[str], split: str, sources: list[Source]) -> dict:
    """What the last output line holds, for scripts: mIoU, pixel accuracy, split, per-class IoU."""

    def number(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(float(value), 6)

    return {
        "miou": number(scores["miou"]),
        "pixel_accuracy": number(scores["pixel_accuracy"]),
        "split": split,
        "iou": {name: number(scores[f"iou_{name}"]) for name in class_names},
        "models": [source.label for source in sources],
    }
