"""A sweep as one study: an MLflow parent run, its jobs as children, and a summary over them.

The parent's id is kept in ``<sweep dir>/parent_run.txt``: every job, whatever launched it (in
this process, a joblib worker or a SLURM node sharing the sweep folder), reads it and tags its run
with ``mlflow.parentRunId``; the same command with the same ``hydra.sweep.dir`` finds the parent
again and completes it.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from scipy import stats

from animalseg.files import write_atomic
from animalseg.tracking.compare import write_comparison
from animalseg.tracking.mlflow import KIND_TAG, STUDY, MlflowTracker

log = logging.getLogger(__name__)

PARENT_FILE = "parent_run.txt"
PARENT_TAG = "mlflow.parentRunId"
# Metrics summarised with mean, std and 95 % CI (and, val only, the best child: never select on
# test); every val_iou_<class> / test_iou_<class> gets its mean over the runs that scored the
# class and their count (``_scored``).
HEADLINE = ("val_miou", "test_miou")
SELECTED_ON = "val_miou"


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The study's parent run id written in ``sweep_dir``, or None (not a study)."""
    path = Path(sweep_dir) / PARENT_FILE
    return path.read_text().strip() or None if path.is_file() else None


def open_parent(tracker: MlflowTracker, sweep_dir: Path, name: str | None) -> str:
    """Create the sweep's parent run, or reopen the one a killed sweep in ``sweep_dir`` left."""
    client = tracker.client
    run_id = parent_run_id(sweep_dir)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        log.info("Resuming the study in %s (MLflow parent run %s)", sweep_dir, run_id)
        return run_id
    tags = {**tracker.tags, "sweep_dir": str(sweep_dir.resolve()), KIND_TAG: STUDY}
    run = client.create_run(tracker.prepare(), run_name=name, tags=tags)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(sweep_dir / PARENT_FILE, run.info.run_id + "\n")
    log.info("Study %s: MLflow parent run %s", sweep_dir, run.info.run_id)
    return run.info.run_id


def children(client: MlflowClient, parent_id: str) -> list[Run]:
    """The parent's child runs, oldest first."""
    experiment = client.get_run(parent_id).info.experiment_id
    found = client.search_runs([experiment], f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=10_000)
    return sorted(found, key=lambda r: r.info.start_time)


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std and the half-width of the 95 % Student-t interval of the mean (std and
    interval need two values)."""
    summary = {"mean": statistics.fmean(values)}
    if len(values) > 1:
        std = statistics.stdev(values)
        summary["std"] = std
        summary["ci95"] = float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return summary


def summarize(runs: Sequence[Run]) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags of a study over its FINISHED runs' final values (the latest logged, not
    ``best_*``); failed or killed runs are counted and named, never averaged. A run whose final
    value is NaN did not score it (a class absent from its split) and is left out of the mean;
    a per-class mean comes with the count of runs it is over, NaN when none scored the class."""
    finished = [r for r in runs if r.info.status == "FINISHED"]
    failed = [r for r in runs if r.info.status in ("FAILED", "KILLED")]
    metrics: dict[str, float] = {"children_finished": len(finished), "children_failed": len(failed)}
    tags = {"failed_children": ", ".join(r.info.run_name or r.info.run_id for r in failed) or "-"}
    names = sorted({k for r in finished for k in r.data.metrics})
    for name in names:
        values = [r.data.metrics[name] for r in finished if _finite(r.data.metrics.get(name))]
        if name.startswith(("val_iou_", "test_iou_")):
            metrics[f"{name}_mean"] = statistics.fmean(values) if values else math.nan
            metrics[f"{name}_scored"] = len(values)
        if not values:
            continue
        if name in HEADLINE:
            metrics.update({f"{name}_{k}": v for k, v in interval(values).items()})
        if name == SELECTED_ON:
            best = max((r for r in finished if _finite(r.data.metrics.get(name))), key=lambda r: r.data.metrics[name])
            metrics[f"{name}_best"] = best.data.metrics[name]
            tags[f"{name}_best_run"] = best.info.run_id
    return metrics, tags


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def log_summary(client: MlflowClient, parent_id: str, out: Path) -> dict[str, float]:
    """Log the study's summary into the parent (step = finished children so far) with the
    comparison table and plots of its runs under ``summary/``; returns the metrics."""
    runs = children(client, parent_id)
    metrics, tags = summarize(runs)
    step = int(metrics["children_finished"])
    for key, value in metrics.items():
        client.log_metric(parent_id, key, value, step=step)
    for key, value in tags.items():
        client.set_tag(parent_id, key, value)
    if runs:
        title = client.get_run(parent_id).info.run_name or parent_id
        for path in write_comparison(client, runs, out, title):
            client.log_artifact(parent_id, str(path), "summary")
    return metrics


def close_parent(client: MlflowClient, parent_id: str, summary: Mapping[str, float]) -> None:
    """End the parent: FINISHED when every child finished, FAILED when any failed."""
    client.set_terminated(parent_id, "FAILED" if summary.get("children_failed") else "FINISHED")
