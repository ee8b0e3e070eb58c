"""The MLflow side of a run: where it is stored, its params, metrics, artifacts and status."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from animalseg.errors import ConfigError

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
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as error:
        raise ConfigError(f"logger.register_alias={alias}: {error.message}") from None


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
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=self.prepare(),
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

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Finite numbers only (MLflow rejects NaN for absent classes in some stores)."""
        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if finite:
            mlflow.log_metrics(finite, step=step)

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
