"""``evaluate.py``: score a checkpoint on a dataset split at native resolution."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.build import build_data
from animalseg.errors import ConfigError
from animalseg.sources import KerasSource, Source, ensemble_outputs, load_sources
from animalseg.tracking.plots import plot_class_iou, plot_confusion
from animalseg.trained import finite
from animalseg.training.evaluation import Evaluator

log = logging.getLogger(__name__)

# data keys that once said how evaluation predicts, and the inference settings that do now
PREDICTION_KEYS = {"data.eval_size": "inference.size", "data.antialias": "inference.antialias"}


def data_config(cfg: DictConfig, run_config: DictConfig | None) -> DictConfig:
    """The training run's data config (its splits and classes), with this command's ``data.*``
    overrides on top; the composed ``data`` when the run's config is unknown. It says which images
    are scored; how the model predicts is its own (``animalseg.inference``)."""
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

    for override in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        key, _, value = override.partition("=")
        if key in PREDICTION_KEYS:
            raise ConfigError(
                f"{override}: a model predicts with its own settings; give {PREDICTION_KEYS[key]}={value} "
                "to change how it predicts"
            )
    sources, overrides = load_sources(cfg)
    first = sources[0]
    data = build_data(data_config(cfg, first.run_config))
    dataset = data.dataset
    if dataset.num_classes != first.num_classes:
        raise ConfigError(
            f"data: the dataset has {dataset.num_classes} classes, {first.label} predicts {first.num_classes}; "
            "pick the data it was trained on (e.g. data=animals)"
        )
    predicting = [s for s in sources if s.settings is not None]
    for source in predicting:
        print(f"{source.label} predicts with: {source.settings.describe()}")
    if overrides:
        print(f"  (this command's overrides: {', '.join(overrides)})")
    evaluator = Evaluator(dataset, cfg.split, batch_size=data.eval_batch_size, num_examples=0)
    started = time.perf_counter()  # the cost of the scoring itself (TTA's cost is read from it)
    if len(sources) == 1 and isinstance(first, KerasSource):  # the very evaluation training runs
        evaluator.settings = first.settings
        result = evaluator.evaluate(first.trained.model)
    else:
        result = evaluator.score(lambda images: (ensemble_outputs(sources, images)[0], None))
    seconds = time.perf_counter() - started
    tta_used = any(source.settings.tta.enabled for source in predicting)
    confusion, scores = result.confusion, result.scores  # Boundary IoU besides the confusion matrix's
    prefix = f"eval_{cfg.split}{'_tta' if tta_used else ''}_"
    metrics = {f"{prefix}{k}": v for k, v in scores.items()}
    num_images = len(dataset.ids(cfg.split))
    label = " + ".join(s.label for s in sources)
    print(f"\n{label} on {cfg.split} ({num_images} images, scored at native resolution)")
    for name in dataset.class_names:
        print(f"  IoU {name:<16}{finite(scores[f'iou_{name}'])}")
    print(f"  mIoU                {finite(scores['miou'])}")
    print(f"  pixel accuracy      {finite(scores['pixel_accuracy'])}")
    print(f"  Boundary mIoU       {finite(scores['boundary_miou'])}")
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
    timing = {"seconds": round(seconds, 3), "ms_per_image": round(per_image, 1)}
    predicted_with = {"inference": [source.settings.describe() for source in predicting]}
    print(json.dumps(summary_line(scores, dataset.class_names, cfg.split, sources) | timing | predicted_with))
    return metrics


def summary_line(scores: dict[str, float], class_names: list[str], split: str, sources: list[Source]) -> dict:
    """What the last output line holds, for scripts: mIoU, pixel accuracy, split, per-class IoU."""

    def number(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(float(value), 6)

    return {
        "miou": number(scores["miou"]),
        "pixel_accuracy": number(scores["pixel_accuracy"]),
        "boundary_miou": number(scores["boundary_miou"]),
        "split": split,
        "iou": {name: number(scores[f"iou_{name}"]) for name in class_names},
        "models": [source.label for source in sources],
    }
