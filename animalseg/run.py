"""One training run from a composed config: validate → build parts → fit → report."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from animalseg.build import RunParts, build_run
from animalseg.config import validate_config
from animalseg.console import plural
from animalseg.data.dataset import SegmentationDataset
from animalseg.data.layout import FileDataset
from animalseg.data.splits import write_split
from animalseg.errors import ConfigError
from animalseg.files import write_atomic
from animalseg.inference import settings_of
from animalseg.paths import require_writable
from animalseg.tracking.lineage import split_datasets
from animalseg.tracking.mlflow import MlflowTracker, flatten
from animalseg.tracking.naming import OVERRIDES_TAG, read_swept, run_name
from animalseg.tracking.report import log_test_scores, log_training_outputs
from animalseg.tracking.study import JOB_TAG, PARENT_TAG, parent_run_id
from animalseg.trained import CLASSES_FILE, write_classes
from animalseg.training.callbacks import LAST_CHECKPOINT
from animalseg.training.distribution import Distribution
from animalseg.training.state import RunState, read_state, save_state
from animalseg.training.trainer import TrainingResult

log = logging.getLogger(__name__)


def hydra_context() -> tuple[Path | None, list[str], dict[str, str], str | None]:
    """Hydra's output dir, the task overrides, the run's tags and its name, when running under
    Hydra (a sweep's job is named by the keys the sweep varies)."""
    if not HydraConfig.initialized():
        return None, [], {}, None
    hydra = HydraConfig.get()
    tags = {"hydra_mode": str(hydra.mode.name)}
    if hydra.mode == RunMode.MULTIRUN:
        tags["sweep_dir"] = str(Path(hydra.sweep.dir).resolve())
        tags[JOB_TAG] = str(hydra.job.num)
        parent = parent_run_id(hydra.sweep.dir)
        if parent is not None:  # a job of a study: a child of its parent run
            tags[PARENT_TAG] = parent
    overrides = list(hydra.overrides.task)
    swept = read_swept(Path(hydra.sweep.dir)) if hydra.mode == RunMode.MULTIRUN else None
    tags[OVERRIDES_TAG] = " ".join(overrides)
    return Path(hydra.runtime.output_dir), overrides, tags, run_name(hydra.runtime.choices, overrides, swept)


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """Train and evaluate as ``cfg`` says, logging to MLflow; returns the final weights' val metrics."""
    validate_config(cfg)
    hydra_dir, overrides, tags, name = hydra_context()
    run_dir = require_writable(run_dir or hydra_dir or Path(cfg.paths.output_dir) / "runs" / "unnamed", "hydra.run.dir")
    state = read_state(run_dir / "checkpoints")  # every worker reads it before the chief writes
    name = cfg.logger.get("run_name") or name
    parts = build_run(cfg, {"run_name": name, "tags": {**tags, "run_dir": str(run_dir.resolve())}})
    require_same_run_on_all_workers(parts.job.distribution, cfg, run_dir, state)
    if state is not None:
        check_same_run(run_dir / "config.yaml", cfg)
        if state.reported and state.epoch >= cfg.trainer.epochs:
            return report_finished(run_dir, state)
    if parts.tracker is None:  # a worker: trains in lockstep with the chief, which logs and saves
        distribution = parts.job.distribution
        log.info(
            "%s of a %d-replica run: training; the chief logs and saves", distribution.worker, distribution.num_replicas
        )
        return parts.trainer.fit(parts.job, run_dir, state).metrics
    state = start_or_resume(parts, run_dir, overrides, state)
    tracker = parts.tracker
    try:
        result = parts.trainer.fit(parts.job, run_dir, state)
        log_training_outputs(tracker, result, parts.data, run_dir)
        test = log_test_scores(tracker, parts.data, parts.model, parts.job.loss, result.epochs)
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        print(
            "interrupted: stopped at a step boundary; the checkpoints and the MLflow run (marked KILLED) "
            "are kept, and the same command resumes from the last finished epoch",
            file=sys.stderr,
        )
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    state.reported = True  # until here, a kill leaves the reporting to the same command again
    state.final_weights, state.final_metrics = result.final_weights, result.metrics
    save_state(run_dir / "checkpoints", state)
    print_summary(result, parts, run_dir)
    if test:
        print(
            f"Test:      test_miou {test['test_miou']:.4f} on '{parts.data.test_split}' "
            f"(final weights = {result.final_weights}; scored once)"
        )
    return result.metrics


def start_or_resume(parts: RunParts, run_dir: Path, overrides: list[str], state: RunState | None) -> RunState:
    """Write the run's config, then start its MLflow run and log its params, or reopen the run
    a killed training left (logging the epochs it finished but had not logged)."""
    cfg, tracker, model, dataset = parts.cfg, parts.tracker, parts.model, parts.data.dataset
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    write_atomic(run_dir / "overrides.txt", "\n".join(overrides) + "\n")
    classes = write_classes(
        run_dir / "checkpoints" / CLASSES_FILE, dataset.class_names, dataset.colors, dataset.ignore_index
    )
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_made_split(parts.data.source, run_dir)
    tracker.tags["model"] = model.name
    tracker.start(run_id=state.mlflow_run_id if state else None)
    if state is not None:
        log.info("Resuming %s after epoch %d (MLflow run %s)", run_dir, state.epoch, tracker.run_id)
        state.reported = False  # its MLflow run is open again (trainer.epochs raised, or a kill while reporting)
        relog_missing_epochs(tracker, state)
        return state
    state = RunState(mlflow_run_id=tracker.run_id)
    save_state(run_dir / "checkpoints", state)  # a kill in epoch 1 resumes into this run
    tracker.log_params(
        {
            **flatten(OmegaConf.to_container(cfg, resolve=True)),
            "model.params": model.count_params(),
            "hardware.replicas": parts.job.distribution.num_replicas,
        }
    )
    for path in (run_dir / "config.yaml", run_dir / "overrides.txt"):
        tracker.log_artifact(path, "config")
    tracker.log_artifact(classes, "checkpoints")
    tracker.log_inputs(split_datasets(dataset))
    log.info("Run dir: %s | MLflow run %s", run_dir, tracker.run_id)
    log.info("The model predicts (validation, the logged model, exports) with: %s", settings_of(model).describe())
    return state


def write_made_split(source: SegmentationDataset, run_dir: Path) -> None:
    """A dataset without split lists had a train/val split made: write it beside the run's config
    (``<run>/splits/{train,val}.txt``) so that other runs can train on the same split."""
    if isinstance(source, FileDataset) and source.made_split:
        folder = write_split(run_dir, source.split_ids())
        log.info(
            "The train/val split made for %s is in %s (reuse: data.dataset.split_dir=%s)", source.root, folder, folder
        )


def print_summary(result: TrainingResult, parts: RunParts, run_dir: Path) -> None:
    """The block a run ends with: the final weights' figures and per-class IoU, the best epoch's
    (selected on the same val split), where the run and its model are, and how to open it."""
    final, best = result.metrics, result.best_metrics
    tracker = parts.tracker
    classes = {k.removeprefix("val_iou_"): v for k, v in final.items() if k.startswith("val_iou_")}
    width = max((len(name) for name in classes), default=5)
    table = "\n".join(
        f"  {name:<{width}}  {value:.4f}" if math.isfinite(value) else f"  {name:<{width}}  -  (not in the val split)"
        for name, value in classes.items()
    )
    print(
        f"\nFinished: val_miou {final.get('val_miou', float('nan')):.4f}, "
        f"pixel accuracy {final.get('val_pixel_accuracy', float('nan')):.4f} with the final weights = "
        f"{result.final_weights}; best_val_miou {best.get('val_miou', float('nan')):.4f} at epoch "
        f"{result.best_epoch} (selected on val)\n"
        f"{'  ' + 'class':<{width + 2}}  val IoU\n{table}\n"
        f"Outputs:  {run_dir.resolve()}\n"
        f"Model:    {(result.checkpoint_dir / LAST_CHECKPOINT).resolve()}\n"
        f"MLflow:   run {tracker.run_id} in experiment '{tracker.experiment_name}'\n"
        f"Open it:  {tracker.ui_command()}\n"
        f"          then {tracker.run_page()}"
    )


# Settings a resumed run may change: how long and how it reports, not what it trains.
RESUMABLE_CHANGES = (
    "trainer.epochs",
    "trainer.verbose",
    "verbose",
    "logger.",
    "paths.",
    "study.",  # the study's size (study.seeds=10 extends a study of 5)
    "hardware.intra_op_threads",
    "hardware.inter_op_threads",
)


# What configs written by earlier versions call otherwise, with the same effect on the run: a moved
# class path, and keys whose setting moved elsewhere (the evaluation callback's tta is now the
# model's own inference settings, from the same tta group).
MOVED_TARGETS = {"animalseg.training.evaluation.TestTimeAugmentation": "animalseg.inference.TestTimeAugmentation"}
MOVED_KEYS = ("callbacks.evaluation.tta.",)


def check_same_run(saved_config: Path, cfg: DictConfig) -> None:
    """Refuse to resume a run directory whose training used other settings."""
    if not saved_config.is_file():
        return
    saved = flatten(OmegaConf.to_container(OmegaConf.load(saved_config), resolve=True))
    kept = {k: v for k, v in saved.items() if not k.startswith(MOVED_KEYS)}
    before = {k: MOVED_TARGETS.get(v, v) if isinstance(v, str) else v for k, v in kept.items()}
    now = flatten(OmegaConf.to_container(cfg, resolve=True))
    # a setting that follows trainer.epochs (the cosine or one-cycle schedule's length) changes with it
    raw = flatten(OmegaConf.to_container(cfg, resolve=False))
    follows = {k for k, v in raw.items() if v == "${trainer.epochs}" and before.get(k) == before.get("trainer.epochs")}
    changed = [  # a key the saved run lacks is an option added since, not a change
        f"{key}: {before.get(key)!r} → {now.get(key)!r}"
        for key in sorted(before)
        if before.get(key) != now.get(key) and not key.startswith(RESUMABLE_CHANGES) and key not in follows
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
    "verbose",
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
    """A finished run started again: say so and return its final weights' metrics, without training."""
    last = state.history[-1] if state.history else {}
    metrics = state.final_metrics or {k: v for k, v in last.items() if k.startswith("val_")}
    weights = state.final_weights or "last epoch"
    print(
        f"{run_dir} already finished {plural(state.epoch, 'epoch')} "
        f"(final val_miou {metrics.get('val_miou', float('nan')):.4f}"
        f", final weights = {weights}); nothing to do. Raise trainer.epochs to train on."
    )
    return metrics
