"""The MLflow side of a run: where it is stored, its params, metrics, artifacts and status."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow.data.dataset import Dataset
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from animalseg.compat.mlflow import alias_problem
from animalseg.errors import ConfigError
from animalseg.tracking.sections import mlflow_metrics

MAX_PARAM_LENGTH = 6000
# MLflow 3's UI opens an experiment without this tag in its GenAI view; this one shows model training.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# A sweep's parent run is tagged so, so that tables of runs list its jobs and not the study.
KIND_TAG, STUDY = "run_kind", "study"


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: for a SQLite store, ``mlartifacts`` beside the
    database as an absolute file URI, so runs and ``mlflow ui`` find them from any directory
    (MLflow's default is ``./mlruns`` of wherever the command runs). None for a server or another
    database, which keeps its own."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///").partition("?")[0])
    return (database.resolve().parent / "mlartifacts").as_uri()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → dotted keys (``loss.boundary_weight``); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def check_alias(alias: str) -> None:
    """Refuse an alias the registry would refuse, before training rather than after it (``latest``
    and ``v<number>`` are MLflow's own names for versions)."""
    problem = alias_problem(alias)
    if problem is not None:
        raise ConfigError(f"logger.register_alias={alias}: {problem}")


def run_artifact(client: MlflowClient, run_id: str, artifact_path: str, cache_dir: Path) -> Path:
    """A run's artifact where it lies when the artifact store is a local folder (a checkpoint is
    not copied: with its optimizer state it can weigh hundreds of MB), else downloaded once into
    ``cache_dir/<run id>/`` and read from there on later calls."""
    location = client.get_run(run_id).info.artifact_uri
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        local = Path(url2pathname(parsed.path)) / artifact_path
        if local.exists():
            return local
    cached = cache_dir / run_id / artifact_path
    if not cached.exists():
        client.download_artifacts(run_id, artifact_path, str(cache_dir / run_id))
    return cached


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


class MlflowTracker:
    """One MLflow run: ``start`` it, log into it, ``finish`` it with a status."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str = "animalseg",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_model: bool = True,
        register_as: str | None = None,
        register_alias: str = "newest",
        system_metrics: bool = False,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.log_model = bool(log_model)
        self.register_as = register_as
        check_alias(register_alias)
        self.register_alias = register_alias
        self.system_metrics = bool(system_metrics)
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.model_id: str | None = None  # the run's logged MLflow Model, once logged

    def prepare(self) -> str:
        """The experiment's id. The one place experiments are created (with the store's tables),
        with ``artifact_location`` and the experiment-kind tag; an existing experiment keeps its
        artifact location and gets the tag if it lacks it. Called once before parallel jobs so they
        do not race to create it."""
        client = self.client
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return client.create_experiment(
                self.experiment_name,
                artifact_location=artifact_location(self.tracking_uri),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id

    def start(self, run_id: str | None = None) -> str:
        """Start a new run, or reopen ``run_id`` (a resumed training)."""
        mlflow.set_tracking_uri(self.tracking_uri)
        self.experiment_id = self.prepare()
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=self.experiment_id,
            run_name=None if run_id else self.run_name,
            tags=None if run_id else self.tags,
            log_system_metrics=self.system_metrics,  # CPU, memory (and GPU) while training, through psutil
        )
        self.run_id = run.info.run_id
        return self.run_id

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params({k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items()})

    def log_model_metrics(
        self, metrics: Mapping[str, float], step: int, dataset: Dataset, prefix: str = "val_"
    ) -> None:
        """Link the final weights' ``prefix`` metrics, already logged at ``step``, to the run's
        logged MLflow Model (``model_id``) and the ``dataset`` they were scored on: what the
        model's page lists as its metrics. Each is the run's own entry sent again with its
        timestamp, so the store links it without adding a second point at that step to the run's
        history. Nothing without a logged model."""
        if self.model_id is None:
            return
        client = self.client
        linked = []
        for key, value in mlflow_metrics({k: v for k, v in metrics.items() if k.startswith(prefix)}).items():
            logged = [m for m in client.get_metric_history(self.run_id, key) if m.step == step]
            value, timestamp = (logged[-1].value, logged[-1].timestamp) if logged else (value, int(time.time() * 1000))
            linked.append(
                Metric(
                    key,
                    value,
                    timestamp,
                    step,
                    model_id=self.model_id,
                    dataset_name=dataset.name,
                    dataset_digest=dataset.digest,
                    run_id=self.run_id,
                )
            )
        client.log_batch(self.run_id, metrics=linked)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Every number under its key on MLflow's charts page (``tracking/sections.py``), one that
        is not finite as NaN: a class absent from the split has no IoU,
        and its NaN at this step keeps the run's latest value from being an earlier epoch's (MLflow
        stores NaN as such; an infinity it would store as +-1.8e308, a figure means would take in)."""
        numbers = {k: float(v) for k, v in mlflow_metrics(metrics).items() if isinstance(v, (int, float))}
        numbers = {k: v if math.isfinite(v) else math.nan for k, v in numbers.items()}
        if numbers:
            mlflow.log_metrics(numbers, step=step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags(dict(tags))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file, or a folder (as ``<artifact_path>/<folder name>``)."""
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), f"{artifact_path}/{path.name}" if artifact_path else path.name)
        else:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_inputs(self, datasets: Mapping[str, Any]) -> None:
        """MLflow datasets (``mlflow.data``) as the run's inputs, each tagged with its context.

        Parallel sweep jobs log the same dataset at once: the store inserts it for the first and
        refuses the second's insert (a unique constraint), so that one is logged again, finding it."""
        for context, dataset in datasets.items():
            try:
                mlflow.log_input(dataset, context=context)
            except MlflowException:
                mlflow.log_input(dataset, context=context)

    def finish(self, status: str = "FINISHED") -> None:
        if mlflow.active_run() is not None:
            mlflow.end_run(status=status)

    def ui_command(self) -> str:
        """How to look at the runs: the server's address, or the command that serves a local store."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri} in a browser"
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"

    def run_page(self, run_id: str | None = None, experiment_id: str | None = None) -> str:
        """The URL of a run's page in the MLflow UI (the server's address, or the one ``mlflow ui``
        serves a local store at). It opens in the model-training view; the experiment's own page
        opens in the GenAI view in a fresh browser (MLflow 3), whatever the experiment's kind."""
        base = self.tracking_uri if self.tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
        experiment = experiment_id or self.experiment_id or self.prepare()
        return f"{base.rstrip('/')}/#/experiments/{experiment}/runs/{run_id or self.run_id}"
