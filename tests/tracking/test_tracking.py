"""Where MLflow keeps a run's artifacts, and how MLflow 3's UI shows animalseg's experiments."""

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from animalseg.tracking.mlflow import MlflowTracker, artifact_location

KIND = {"mlflow.experimentKind": "custom_model_development"}


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """A working directory that is not the store's."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    if mlflow.active_run() is not None:  # a failed test leaves no run open for the next
        mlflow.end_run("FAILED")


def _log_one_file(tracker: MlflowTracker, tmp_path: Path) -> str:
    (tmp_path / "note.txt").write_text("hello")
    tracker.start()
    tracker.log_artifact(tmp_path / "note.txt", "config")
    tracker.finish()
    return tracker.run_id


def test_a_local_store_keeps_the_artifacts_beside_its_database_from_any_directory(tmp_path, elsewhere):
    store = tmp_path / "outputs"
    tracker = MlflowTracker(f"sqlite:///{store / 'mlflow.db'}", "animalseg")
    run_id = _log_one_file(tracker, tmp_path)
    assert not (elsewhere / "mlruns").exists()
    assert [p.read_text() for p in (store / "mlartifacts").rglob("note.txt")] == ["hello"]
    artifact_uri = tracker.client.get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith((store / "mlartifacts").as_uri())


def test_prepare_creates_the_experiment_as_start_does_with_the_kind_tag(tmp_path, elsewhere):
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "animalseg")
    experiment_id = tracker.prepare()
    experiment = tracker.client.get_experiment(experiment_id)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert experiment.tags.items() >= KIND.items()
    run_id = _log_one_file(tracker, tmp_path)
    assert tracker.client.get_run(run_id).info.experiment_id == experiment_id


def test_an_experiment_created_without_a_location_keeps_working_and_gets_the_kind_tag(tmp_path, elsewhere):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old = MlflowClient(uri).create_experiment("animalseg")  # as animalseg created it before
    tracker = MlflowTracker(uri, "animalseg")
    run_id = _log_one_file(tracker, tmp_path)
    assert [a.path for a in tracker.client.list_artifacts(run_id, "config")] == ["config/note.txt"]
    assert tracker.client.get_run(run_id).info.experiment_id == old
    assert tracker.client.get_experiment(old).tags.items() >= KIND.items()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///outputs/mlflow.db", "outputs/mlartifacts"),  # relative to where the command runs
        ("sqlite:////srv/m.db?timeout=20", "/srv/mlartifacts"),
        ("http://127.0.0.1:5000", None),  # a server keeps its own
        ("postgresql://db/mlflow", None),
    ],
)
def test_the_artifact_location_follows_the_tracking_uri(uri, expected, elsewhere):
    want = None if expected is None else (elsewhere / expected).resolve().as_uri()
    assert artifact_location(uri) == want


def test_a_dataset_another_job_inserted_at_the_same_moment_is_logged_again(monkeypatch):
    """Two parallel sweep jobs log the same dataset: the store refuses the second insert once."""
    import mlflow
    from mlflow.exceptions import MlflowException

    calls = []

    def log_input(dataset, context):
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException("UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest")

    monkeypatch.setattr(mlflow, "log_input", log_input)
    MlflowTracker("sqlite:///unused.db").log_inputs({"training": object()})
    assert calls == ["training", "training"]
