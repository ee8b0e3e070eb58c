"""``evaluate.py``: score a checkpoint on a dataset split at native resolution."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.build import build_data
from animalseg.inference import finite, load_trained, tta_setting
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
    """Evaluate, print per-class IoU, mIoU and pixel accuracy, plot, and log when asked."""
    out = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracking_uri = cfg.logger.tracking_uri
    trained = load_trained(cfg.checkpoint, cfg.run_id, tracking_uri, out)
    data = build_data(data_config(cfg, trained.run_config))
    dataset = data.dataset
    tta = tta_setting(cfg, trained.run_config)
    evaluator = Evaluator(
        dataset,
        cfg.split,
        data.eval_size,
        data.eval_batch_size,
        trained.model.output_stride,
        num_examples=0,
        boundary_width=data.boundary_width,
        tta=tta,
        antialias=data.antialias,
    )
    result = evaluator.evaluate(trained.model)
    prefix = f"eval_{cfg.split}{'_tta' if tta.enabled else ''}_"
    metrics = result.metrics(prefix)
    print(
        f"\n{trained.checkpoint} on {cfg.split} ({len(dataset.ids(cfg.split))} images, native resolution"
        f"{', ' + tta.describe() if tta.enabled else ''})"
    )
    for name in dataset.class_names:
        print(f"  IoU {name:<16}{finite(result.scores[f'iou_{name}'])}")
    print(f"  mIoU                {finite(result.scores['miou'])}")
    print(f"  pixel accuracy      {finite(result.scores['pixel_accuracy'])}")
    plots = [
        plot_confusion(result.confusion, dataset.class_names, out / f"{prefix}confusion_matrix.png"),
        plot_class_iou({n: result.scores[f"iou_{n}"] for n in dataset.class_names}, out / f"{prefix}class_iou.png"),
    ]
    print(f"Plots: {', '.join(str(p) for p in plots)}")
    if cfg.log_to_mlflow:  # into the trained run when known, else a run of its own
        tracker = instantiate(cfg.logger, run_name=None if trained.run_id else f"evaluate {cfg.split}")
        tracker.start(run_id=trained.run_id)
        tracker.log_metrics(metrics, step=0)
        for plot in plots:
            tracker.log_artifact(plot, "evaluation")
        tracker.finish()
        print(f"Logged to MLflow ({tracking_uri})")
    return metrics
