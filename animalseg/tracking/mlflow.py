"""The MLflow side of a run: where it is stored, its params, metrics, artifacts and status."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

MAX_PARAM_LENGTH = 6000


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


class MlflowTracker:
    """One MLflow run: ``start`` it, log into it, ``finish`` it with a status."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str = "animalseg",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.run_id: str | None = None

    def prepare(self) -> None:
        """Create the store's tables and the experiment once, before parallel jobs race to."""
        client = MlflowClient(self.tracking_uri)
        if client.get_experiment_by_name(self.experiment_name) is None:
            client.create_experiment(self.experiment_name)

    def start(self, run_id: str | None = None) -> str:
        """Start a new run, or reopen ``run_id`` (a resumed training)."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment_name)
        run = mlflow.start_run(
            run_id=run_id, run_name=None if run_id else self.run_name, tags=None if run_id else self.tags
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

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        if mlflow.active_run() is not None:
            mlflow.end_run(status=status)

    def ui_command(self) -> str:
        """How to look at the runs: the server's address, or the command that serves a local store."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri} in a browser"
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"
