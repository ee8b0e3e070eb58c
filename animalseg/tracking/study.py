"""A sweep as one study: an MLflow parent run, its jobs as children, and a summary over them.

The parent's id is kept in ``<sweep dir>/parent_run.txt``: every job, whatever launched it (in
this process, a joblib worker or a SLURM node sharing the sweep folder), reads it and tags its run
with ``mlflow.parentRunId``; the same command with the same ``hydra.sweep.dir`` finds the parent
again and completes it.

Each job also records what became of it in ``<sweep dir>/jobs/<job number>.json`` (``record_job``),
from its own process: a job that fails before its MLflow run exists, or whose process dies, is
still a failed child of the study.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Param, Run
from mlflow.tracking import MlflowClient
from scipy import stats

from animalseg.files import write_atomic
from animalseg.tracking.compare import write_comparison
from animalseg.tracking.mlflow import KIND_TAG, MAX_PARAM_LENGTH, STUDY, MlflowTracker
from animalseg.tracking.naming import SWEPT_TAG
from animalseg.tracking.sections import class_iou_key

log = logging.getLogger(__name__)

PARENT_FILE = "parent_run.txt"
PARENT_TAG = "mlflow.parentRunId"
JOB_TAG = "sweep_job"  # a child run's job number (hydra.job.num)
JOBS_DIR = "jobs"
RUNNING, COMPLETED, FAILED = "RUNNING", "COMPLETED", "FAILED"
# Metrics summarised with mean, std and 95 % CI (and, val only, the best child: never select on
# test); every val_iou/<class> / test_iou/<class> gets its mean over the runs that scored the
# class and their count (``_scored``).
HEADLINE = ("val_miou", "test_miou")
SELECTED_ON = "val_miou"


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The study's parent run id written in ``sweep_dir``, or None (not a study)."""
    path = Path(sweep_dir) / PARENT_FILE
    return path.read_text().strip() or None if path.is_file() else None


def open_parent(
    tracker: MlflowTracker,
    sweep_dir: Path,
    name: str | None,
    params: Mapping[str, Any] | None = None,
    swept: Sequence[str] = (),
) -> str:
    """Create the sweep's parent run, with the ``params`` its jobs share and the ``swept`` keys
    as a tag, or reopen the one a killed sweep in ``sweep_dir`` left."""
    client = tracker.client
    run_id = parent_run_id(sweep_dir)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        log.info("Resuming the study in %s (MLflow parent run %s)", sweep_dir, run_id)
        return run_id
    tags = {**tracker.tags, "sweep_dir": str(sweep_dir.resolve()), KIND_TAG: STUDY, SWEPT_TAG: " ".join(swept)}
    run = client.create_run(tracker.prepare(), run_name=name, tags=tags)
    if params:
        client.log_batch(
            run.info.run_id,
            params=[Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in params.items()],
        )
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


@dataclass(frozen=True)
class JobOutcome:
    """A sweep job as its own process recorded it: RUNNING from its start (a job whose process
    dies stays so), then COMPLETED or FAILED with its error on one line; ``overrides`` are those
    that change what it trains. The same job run again (a resumed sweep) overwrites it."""

    number: str
    status: str
    error: str = ""
    overrides: list[str] = field(default_factory=list)


def record_job(sweep_dir: str | Path, outcome: JobOutcome) -> None:
    """Write ``outcome`` as its job's file (atomic: parallel jobs and a reader never see half)."""
    folder = Path(sweep_dir) / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{outcome.number}.json", json.dumps(asdict(outcome)) + "\n")


def job_outcomes(sweep_dir: str | Path) -> dict[str, JobOutcome]:
    """The recorded jobs of ``sweep_dir`` by job number (none before the first job starts)."""
    paths = (Path(sweep_dir) / JOBS_DIR).glob("*.json")
    return {o.number: o for o in (JobOutcome(**json.loads(p.read_text())) for p in paths)}


@dataclass(frozen=True)
class StudySummary:
    """What the parent logs (``metrics``, ``tags``), and for the console the failed children as
    (label, why) and the best run with its label."""

    metrics: dict[str, float]
    tags: dict[str, str]
    failed: list[tuple[str, str]] = field(default_factory=list)
    best: Run | None = None
    best_label: str = ""


def summarize(runs: Sequence[Run], jobs: Mapping[str, JobOutcome] | None = None, ended: bool = False) -> StudySummary:
    """A study over its FINISHED runs' final values (the latest logged, not ``best_*``).

    A child failed when its run FAILED or was KILLED, or its job recorded an error (which may
    come before the run exists: then the job alone is the child); once the sweep has ``ended``,
    a run or job still RUNNING failed too (its process died). A job run again is its latest run.
    Failed children are counted and named, never averaged. A run whose final value is NaN did
    not score it (a class absent from its split) and is left out of the mean; a per-class mean
    comes with the count of runs it is over, NaN when none scored the class."""
    label = _labeller(jobs or {})
    without_run = dict(jobs or {})
    latest = {r.data.tags.get(JOB_TAG) or r.info.run_id: r for r in runs}  # runs are oldest first
    finished: list[Run] = []
    failed: list[tuple[str, str]] = []
    for key, run in latest.items():
        job, status = without_run.pop(key, None), run.info.status
        if job is not None and job.status == FAILED:
            failed.append((label(run), job.error))
        elif status in ("FAILED", "KILLED") or (ended and status != "FINISHED"):
            failed.append((label(run), f"its run is {status}"))
        elif status == "FINISHED":
            finished.append(run)
    for job in sorted(without_run.values(), key=lambda j: int(j.number)):
        if job.status == FAILED or (ended and job.status == RUNNING):
            failed.append((label(job), job.error or "did not finish"))
    metrics: dict[str, float] = {"children_finished": len(finished), "children_failed": len(failed)}
    tags = {"failed_children": "; ".join(name for name, _ in failed) or "-"}
    best = None
    names = sorted({k for r in finished for k in r.data.metrics})
    for name in names:
        values = [r.data.metrics[name] for r in finished if _finite(r.data.metrics.get(name))]
        if name.startswith((class_iou_key("", "val"), class_iou_key("", "test"))):
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
    return StudySummary(metrics, tags, failed, best, label(best) if best is not None else "")


def _labeller(jobs: Mapping[str, JobOutcome]) -> Callable[[Run | JobOutcome], str]:
    """How a child is named in a summary: ``job <number> (<its own overrides>)``, leaving out
    the overrides every job of the sweep shares; a run without a recorded job by its name."""
    shared = set.intersection(*(set(j.overrides) for j in jobs.values())) if len(jobs) > 1 else set()

    def label(child: Run | JobOutcome) -> str:
        job = child if isinstance(child, JobOutcome) else jobs.get(child.data.tags.get(JOB_TAG, ""))
        if job is None:
            return child.info.run_name or child.info.run_id
        own = [o for o in job.overrides if o not in shared]
        return f"job {job.number} ({' '.join(own) or 'the shared overrides'})"

    return label


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def log_summary(
    client: MlflowClient,
    parent_id: str,
    out: Path,
    jobs: Mapping[str, JobOutcome] | None = None,
    ended: bool = False,
) -> StudySummary:
    """Log the study's summary (``summarize``) into the parent (step = finished children so far)
    with the comparison table and plots of its runs under ``summary/``."""
    runs = children(client, parent_id)
    summary = summarize(runs, jobs, ended)
    step = int(summary.metrics["children_finished"])
    for key, value in summary.metrics.items():
        client.log_metric(parent_id, key, value, step=step)
    for key, value in summary.tags.items():
        client.set_tag(parent_id, key, value)
    if runs:
        title = client.get_run(parent_id).info.run_name or parent_id
        for path in write_comparison(client, runs, out, title):
            client.log_artifact(parent_id, str(path), "summary")
    return summary


def close_parent(
    client: MlflowClient, parent_id: str, summary: StudySummary, stopped: bool = False, interrupted: bool = False
) -> str:
    """End the parent and return its status: FINISHED when every child finished, FAILED when any
    failed or the sweep ``stopped`` on an error, KILLED when it was ``interrupted``."""
    if interrupted:
        status = "KILLED"
    elif stopped or summary.metrics.get("children_failed"):
        status = "FAILED"
    else:
        status = "FINISHED"
    client.set_terminated(parent_id, status)
    return status


def describe(summary: StudySummary, parent_id: str, status: str, experiment: str, page: str | None = None) -> str:
    """The study on the console: its children (the failed ones named, with why), the finished
    ones' final val_miou, the best run and its overrides, the parent run and its ``page``."""
    metrics = summary.metrics
    lines = [f"\nStudy {status}: {int(metrics['children_finished'])} children finished, {len(summary.failed)} failed"]
    lines += [f"  failed: {label}: {why}" for label, why in summary.failed]
    mean, ci95 = metrics.get(f"{SELECTED_ON}_mean"), metrics.get(f"{SELECTED_ON}_ci95")
    if mean is not None:
        spread = f" +- {ci95:.4f} (mean +- 95 % CI)" if ci95 is not None else " (one run: no interval)"
        lines.append(f"{SELECTED_ON}: {mean:.4f}{spread} over the finished children's final weights")
    if summary.best is not None:
        value = summary.best.data.metrics[SELECTED_ON]
        lines.append(f"Best:     {SELECTED_ON} {value:.4f}, {summary.best_label}, run {summary.best.info.run_id}")
    lines.append(f"MLflow:   parent run {parent_id} in experiment '{experiment}'")
    if page is not None:
        lines.append(f"Open it:  {page}")
    return "\n".join(lines)
