"""One training run from a composed config: validate → build parts → fit → report."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.config import model_stride, validate_config
from animalseg.data.check import require_quick_check
from animalseg.data.stats import resolve_class_weights
from animalseg.errors import ConfigError
from animalseg.tracking.mlflow import MlflowTracker, flatten
from animalseg.tracking.report import log_training_outputs

log = logging.getLogger(__name__)


def hydra_context() -> tuple[Path | None, list[str], dict[str, str]]:
    """Hydra's output dir, the task overrides and sweep tags, when running under Hydra."""
    if not HydraConfig.initialized():
        return None, [], {}
    hydra = HydraConfig.get()
    tags = {"hydra_mode": str(hydra.mode.name)}
    if hydra.mode == RunMode.MULTIRUN:
        tags["sweep_dir"] = str(Path(hydra.sweep.dir).resolve())
        tags["sweep_job"] = str(hydra.job.num)
    return Path(hydra.runtime.output_dir), list(hydra.overrides.task), tags


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """Train and evaluate as ``cfg`` says, logging to MLflow; returns the best-epoch metrics."""
    validate_config(cfg)
    hydra_dir, overrides, tags = hydra_context()
    run_dir = Path(run_dir or hydra_dir or Path(cfg.paths.output_dir) / "runs" / "unnamed")
    run_dir.mkdir(parents=True, exist_ok=True)

    hardware = instantiate(cfg.hardware)
    hardware.apply()
    keras.utils.set_random_seed(cfg.seed)
    if cfg.trainer.deterministic:
        tf.config.experimental.enable_op_determinism()

    data = instantiate(cfg.data)
    dataset = data.dataset
    require_quick_check(dataset)
    declared = cfg.model.get("num_classes")
    if declared is not None and declared != dataset.num_classes:
        raise ConfigError(
            f"model.num_classes={declared}: the dataset has {dataset.num_classes} classes "
            f"({', '.join(dataset.class_names)}); remove the override or set it to {dataset.num_classes}"
        )
    model = instantiate(cfg.model, num_classes=dataset.num_classes)
    loss = instantiate(
        cfg.loss,
        ignore_index=dataset.ignore_index,
        class_weights=resolve_class_weights(cfg.loss.get("class_weights"), dataset, cfg.paths.output_dir),
    )
    schedule = instantiate(cfg.schedule)(
        learning_rate=cfg.optimizer.learning_rate, steps_per_epoch=data.steps_per_epoch
    )

    def optimizer():
        return instantiate(cfg.optimizer, learning_rate=schedule.learning_rate)

    augmentation = instantiate(cfg.augmentation)
    trainer = instantiate(cfg.trainer)
    tracker: MlflowTracker = instantiate(
        cfg.logger,
        run_name=cfg.logger.get("run_name") or ",".join(overrides) or None,
        tags={**tags, "model": model.name, "run_dir": str(run_dir.resolve())},
    )

    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    (run_dir / "overrides.txt").write_text("\n".join(overrides) + "\n", encoding="utf-8")
    tracker.start()
    try:
        tracker.log_params({**flatten(OmegaConf.to_container(cfg, resolve=True)), "model.params": model.count_params()})
        tracker.log_artifact(run_dir / "config.yaml", "config")
        tracker.log_artifact(run_dir / "overrides.txt", "config")
        log.info("Run dir: %s | MLflow run %s", run_dir, tracker.run_id)
        result = trainer.fit(
            model,
            loss,
            optimizer,
            data,
            augmentation,
            stride=model_stride(cfg),
            seed=cfg.seed,
            run_dir=run_dir,
            tracker=tracker,
            jit_compile=hardware.jit_compile,
            callbacks=schedule.callbacks,
        )
        log_training_outputs(tracker, result, dataset, run_dir)
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    best = result.metrics
    print(
        f"\nFinished: best val_miou {best.get('val_miou', float('nan')):.4f} "
        f"(pixel accuracy {best.get('val_pixel_accuracy', float('nan')):.4f}) at epoch "
        f"{result.best_epoch} of {trainer.epochs}\n"
        f"Outputs:   {run_dir.resolve()}\n"
        f"Best:      {result.best_checkpoint.resolve()}\n"
        f"MLflow:    run {tracker.run_id} in experiment '{tracker.experiment_name}'\n"
        f"Look at it: {tracker.ui_command()}"
    )
    return best
