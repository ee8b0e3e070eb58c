"""One training run from a composed config: validate → build parts → fit → report."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import keras
import tensorflow as tf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.config import check_model_input, validate_config
from animalseg.data.check import require_quick_check
from animalseg.data.stats import resolve_class_weights
from animalseg.errors import ConfigError
from animalseg.inference import CLASSES_FILE, write_classes
from animalseg.paths import require_writable
from animalseg.tracking.mlflow import MlflowTracker, flatten
from animalseg.tracking.report import log_training_outputs
from animalseg.training.distribution import Distribution
from animalseg.training.state import RunState, read_state, save_state, write_atomic

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


def run_name(overrides: list[str]) -> str | None:
    """The MLflow run name: the overrides that change what is trained (not where it is logged)."""
    science = [o for o in overrides if not o.lstrip("+~").startswith(("logger.", "hydra.", "paths."))]
    return ",".join(science) or None


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """Train and evaluate as ``cfg`` says, logging to MLflow; returns the best-epoch metrics."""
    validate_config(cfg)
    hydra_dir, overrides, tags = hydra_context()
    run_dir = require_writable(run_dir or hydra_dir or Path(cfg.paths.output_dir) / "runs" / "unnamed", "hydra.run.dir")
    state = read_state(run_dir / "checkpoints")  # every worker reads it before the chief writes
    hardware = instantiate(cfg.hardware)
    hardware.apply()
    distribution = hardware.distribution
    replicas, batch = distribution.num_replicas, cfg.data.batch_size
    if batch % replicas:
        raise ConfigError(
            f"data.batch_size={batch}: the global batch must split evenly over the {replicas} replicas; "
            f"e.g. data.batch_size={replicas * max(1, batch // replicas)}"
        )
    require_same_run_on_all_workers(distribution, cfg, run_dir, state)
    if state is not None:
        check_same_run(run_dir / "config.yaml", cfg)
        if state.finished and state.epoch >= cfg.trainer.epochs:
            return report_finished(run_dir, state)

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
    with distribution.scope():
        model = instantiate(
            cfg.model,
            num_classes=dataset.num_classes,
            class_names=dataset.class_names,
            class_colors=dataset.colors.tolist(),
        )
    check_model_input(cfg, model)
    distribution.prepare_model(model)
    loss = instantiate(
        cfg.loss,
        ignore_index=dataset.ignore_index,
        class_weights=resolve_class_weights(cfg.loss.get("class_weights"), dataset, cfg.paths.output_dir),
    )
    schedule = instantiate(cfg.schedule)(
        learning_rate=hardware.learning_rate(cfg.optimizer.learning_rate, data.batch_size),
        steps_per_epoch=data.steps_per_epoch,
    )

    def optimizer():
        return instantiate(cfg.optimizer, learning_rate=schedule.learning_rate)

    augmentation = instantiate(cfg.augmentation)
    trainer = instantiate(cfg.trainer)
    fit = partial(
        trainer.fit,
        model,
        loss,
        optimizer,
        data,
        augmentation,
        stride=model.output_stride,
        seed=cfg.seed,
        run_dir=run_dir,
        jit_compile=hardware.jit_compile,
        callbacks=schedule.callbacks,
        distribution=distribution,
    )
    if not distribution.is_chief:  # trains in lockstep with the chief, which logs and saves
        log.info("%s of a %d-replica run: training; the chief logs and saves", distribution.worker, replicas)
        return fit(state=state or RunState()).metrics

    tracker: MlflowTracker = instantiate(
        cfg.logger,
        run_name=cfg.logger.get("run_name") or run_name(overrides),
        tags={**tags, "model": model.name, "run_dir": str(run_dir.resolve())},
    )
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    write_atomic(run_dir / "overrides.txt", "\n".join(overrides) + "\n")
    classes = write_classes(
        run_dir / "checkpoints" / CLASSES_FILE, dataset.class_names, dataset.colors, dataset.ignore_index
    )
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    tracker.start(run_id=state.mlflow_run_id if state else None)
    try:
        if state is None:
            state = RunState(mlflow_run_id=tracker.run_id)
            save_state(run_dir / "checkpoints", state)  # a kill in epoch 1 resumes into this run
            tracker.log_params(
                {
                    **flatten(OmegaConf.to_container(cfg, resolve=True)),
                    "model.params": model.count_params(),
                    "hardware.replicas": distribution.num_replicas,
                }
            )
            tracker.log_artifact(run_dir / "config.yaml", "config")
            tracker.log_artifact(run_dir / "overrides.txt", "config")
            tracker.log_artifact(classes, "checkpoints")
        else:
            log.info("Resuming %s after epoch %d (MLflow run %s)", run_dir, state.epoch, tracker.run_id)
            relog_missing_epochs(tracker, state)
        log.info("Run dir: %s | MLflow run %s", run_dir, tracker.run_id)
        result = fit(tracker=tracker, state=state)
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


# Settings a resumed run may change: how long and how it reports, not what it trains.
RESUMABLE_CHANGES = (
    "trainer.epochs",
    "trainer.verbose",
    "logger.",
    "paths.",
    "hardware.intra_op_threads",
    "hardware.inter_op_threads",
)


def check_same_run(saved_config: Path, cfg: DictConfig) -> None:
    """Refuse to resume a run directory whose training used other settings."""
    if not saved_config.is_file():
        return
    before = flatten(OmegaConf.to_container(OmegaConf.load(saved_config), resolve=True))
    now = flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = [  # a key the saved run lacks is an option added since, not a change
        f"{key}: {before.get(key)!r} → {now.get(key)!r}"
        for key in sorted(before)
        if before.get(key) != now.get(key) and not key.startswith(RESUMABLE_CHANGES)
    ]
    if changed:
        raise ConfigError(
            f"hydra.run.dir={saved_config.parent} holds a run with other settings ({'; '.join(changed[:5])}"
            f"{'; ...' if len(changed) > 5 else ''}): repeat its command to resume it, or use a new hydra.run.dir"
        )


# Settings that may differ between the workers of one run (where each finds its files, how it
# reports): data.root only names the folder, the run dir itself is compared.
PER_WORKER_SETTINGS = (
    "logger.",
    "paths.",
    "data.root",
    "trainer.verbose",
    "hardware.intra_op_threads",
    "hardware.inter_op_threads",
)


def require_same_run_on_all_workers(
    distribution: Distribution, cfg: DictConfig, run_dir: Path, state: RunState | None
) -> None:
    """On a multi-worker run, refuse to start unless every worker has the same training config,
    the same ``hydra.run.dir`` and sees the same resume state there (shared storage)."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    settings = {k: v for k, v in flat.items() if not k.startswith(PER_WORKER_SETTINGS)}
    seen = (state.epoch, state.finished) if state else None
    text = repr((sorted(settings.items()), str(run_dir.resolve()), seen))
    if not distribution.agree(text):
        raise ConfigError(
            f"hardware=multi_worker: the workers differ in their settings, hydra.run.dir (here {run_dir.resolve()}) "
            "or the checkpoints they see there; start every worker with the same command and the same "
            "hydra.run.dir on storage all workers share"
        )


def relog_missing_epochs(tracker: MlflowTracker, state: RunState) -> None:
    """Log epochs that finished but were not yet in MLflow when the run was killed."""
    logged = {m.step for m in tracker.client.get_metric_history(tracker.run_id, "loss")}
    for epoch, logs in enumerate(state.history, start=1):
        if epoch not in logged:
            tracker.log_metrics(logs, step=epoch)


def report_finished(run_dir: Path, state: RunState) -> dict[str, float]:
    """A finished run started again: say so and return its best metrics, without training."""
    best = state.history[state.best_epoch - 1] if state.best_epoch else {}
    metrics = {k: v for k, v in best.items() if k.startswith("val_")}
    print(
        f"{run_dir} already finished {state.epoch} epochs (best val_miou {metrics.get('val_miou', float('nan')):.4f}"
        f" at epoch {state.best_epoch}); nothing to do. Raise trainer.epochs to train on."
    )
    return metrics
