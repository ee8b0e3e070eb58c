"""Studies: a sweep is one MLflow parent run with its jobs as children, summarised; a job that
fails (before its run exists, or raising) fails the study and the command; a killed sweep or
Optuna search started again with the same command completes; k-fold and seeds presets."""

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from scipy import stats

from animalseg.tracking.mlflow import MlflowTracker
from animalseg.tracking.study import (
    COMPLETED,
    FAILED,
    JOB_TAG,
    PARENT_TAG,
    RUNNING,
    JobOutcome,
    children,
    close_parent,
    describe,
    interval,
    job_outcomes,
    log_summary,
    open_parent,
    record_job,
    summarize,
)
from tests.helpers import ROOT, TINY, quiet_env

EXPERIMENT = "studies"


def _sweep_command(sweep_dir: Path, uri: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        *TINY,
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        f"logger.tracking_uri={uri}",
        f"logger.experiment_name={EXPERIMENT}",
    ]


def _study(uri: str):
    """(client, parent runs, child runs) of the test experiment."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    parents = [r for r in runs if r.data.tags.get("run_kind") == "study"]
    return client, parents, [r for r in runs if r not in parents]


def test_interval_is_the_students_t_half_width():
    values = [0.5, 0.6, 0.7, 0.4]
    summary = interval(values)
    std = math.sqrt(sum((v - 0.55) ** 2 for v in values) / 3)
    assert summary["mean"] == pytest.approx(0.55)
    assert summary["std"] == pytest.approx(std)
    assert summary["ci95"] == pytest.approx(stats.t.ppf(0.975, 3) * std / 2)
    assert set(interval([0.5])) == {"mean"}  # one value has no spread


def test_summary_averages_finished_children_and_names_the_failed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = MlflowTracker(uri, EXPERIMENT)
    parent = open_parent(tracker, tmp_path / "sweep", "seed=1,2,3")
    client = tracker.client
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    for name, status, finals in (("a", "FINISHED", (0.2, 0.5)), ("b", "FINISHED", (0.3, 0.7)), ("c", "FAILED", (0.9,))):
        child = client.create_run(experiment, run_name=name, tags={PARENT_TAG: parent})
        for step, value in enumerate(finals, start=1):  # the final value is the latest, not the best
            client.log_metric(child.info.run_id, "val_miou", value, step=step)
            client.log_metric(child.info.run_id, "val_iou/cat", value / 2, step=step)
        client.log_metric(child.info.run_id, "val_best/miou", 0.99, step=1)
        client.set_terminated(child.info.run_id, status)
    summary = log_summary(client, parent, tmp_path / "summary")
    close_parent(client, parent, summary)
    run = client.get_run(parent)
    assert run.data.metrics["val_miou_mean"] == pytest.approx(0.6)
    assert run.data.metrics["val_miou_best"] == pytest.approx(0.7)
    assert run.data.metrics["val_miou_ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(0.02) / math.sqrt(2))
    assert run.data.metrics["val_iou/cat_mean"] == pytest.approx(0.3)
    assert run.data.metrics["children_failed"] == 1 and run.data.tags["failed_children"] == "c"
    best = next(r for r in children(client, parent) if r.info.run_name == "b")
    assert run.data.tags["val_miou_best_run"] == best.info.run_id
    assert run.info.status == "FAILED"  # not every job finished
    assert {a.path for a in client.list_artifacts(parent, "summary")} == {
        "summary/comparison.md",
        "summary/class_iou.png",
        "summary/val_miou_curves.png",
    }
    # the same sweep folder reopens the same parent
    assert open_parent(tracker, tmp_path / "sweep", "other") == parent
    assert client.get_run(parent).info.status == "RUNNING"


def test_a_class_a_run_could_not_score_is_never_an_earlier_epochs_figure_nor_in_a_mean(tmp_path):
    """A class scored at epoch 1 and absent from the split at epoch 2 (NaN IoU) ends the run as
    NaN, not as epoch 1's value; the study's mean leaves that run out and says over how many runs
    it is, and the comparison table shows n/a for it, as ``evaluate.py`` prints it."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    parent = open_parent(MlflowTracker(uri, EXPERIMENT), tmp_path / "sweep", "seed=1,2")
    nan = float("nan")
    epochs = {
        "absent": [
            {"val_iou_cat": 0.4, "val_iou_dog": 0.6, "val_iou_bird": nan},
            {"val_iou_cat": nan, "val_iou_dog": 0.7},
        ],
        "scored": [
            {"val_iou_cat": 0.2, "val_iou_dog": 0.5, "val_iou_bird": nan},
            {"val_iou_cat": 0.8, "val_iou_dog": 0.6},
        ],
    }
    for name, logs in epochs.items():
        tracker = MlflowTracker(uri, EXPERIMENT, run_name=name, tags={PARENT_TAG: parent})
        tracker.start()
        for step, metrics in enumerate(logs, start=1):
            tracker.log_metrics({"val_miou": 0.5, "val_iou_bird": nan, **metrics}, step=step)
        tracker.finish()
    client = MlflowClient(uri)
    absent = next(r for r in children(client, parent) if r.info.run_name == "absent")
    assert math.isnan(absent.data.metrics["val_iou/cat"])  # not epoch 1's 0.4
    assert [m.step for m in client.get_metric_history(absent.info.run_id, "val_iou/cat")] == [1, 2]

    summary = log_summary(client, parent, tmp_path / "summary")
    metrics = client.get_run(parent).data.metrics
    for logged in (summary.metrics, metrics):
        assert logged["val_iou/cat_mean"] == pytest.approx(0.8) and logged["val_iou/cat_scored"] == 1
        assert logged["val_iou/dog_mean"] == pytest.approx(0.65) and logged["val_iou/dog_scored"] == 2
        assert math.isnan(logged["val_iou/bird_mean"]) and logged["val_iou/bird_scored"] == 0
    lines = (tmp_path / "summary" / "comparison.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| run")).split(" | ")
    rows = {
        cells[0]: cells
        for cells in (line.split(" | ") for line in lines if line.startswith("| absent") or line.startswith("| scored"))
    }
    cat = header.index("IoU cat")
    assert (rows["| absent"][cat], rows["| scored"][cat]) == ("n/a", "0.800")


def test_the_comparison_names_each_model_by_its_decoder_and_encoder_not_its_class(tmp_path):
    """Every decoder on an encoder is one class (``EncoderUNet``): the table says what the run
    trained from the run's ``model`` tag, and falls back to the class for a run without it."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    parent = open_parent(MlflowTracker(uri, EXPERIMENT), tmp_path / "sweep", "model.decoder=fpn,unet")
    target = {"model._target_": "animalseg.models.unet.EncoderUNet"}
    for name, tags in (("fpn", {"model": "fpn_efficientnetlite1"}), ("untagged", {})):
        tracker = MlflowTracker(uri, EXPERIMENT, run_name=name, tags={PARENT_TAG: parent, **tags})
        tracker.start()
        tracker.log_params(target)
        tracker.log_metrics({"val_miou": 0.5}, step=1)
        tracker.finish()
    log_summary(MlflowClient(uri), parent, tmp_path / "summary")
    lines = (tmp_path / "summary" / "comparison.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| run")).split(" | ")
    rows = [line.split(" | ") for line in lines if line.startswith(("| fpn", "| untagged"))]
    models = {cells[0]: cells[header.index("model")] for cells in rows}
    assert models == {"| fpn": "fpn_efficientnetlite1", "| untagged": "EncoderUNet"}


def test_jobs_without_a_run_are_failed_children_and_a_job_run_again_counts_as_it_ended(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep = tmp_path / "sweep"
    tracker = MlflowTracker(uri, EXPERIMENT)
    parent = open_parent(tracker, sweep, "data.fold=0,1,2,3")
    client = tracker.client
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id

    def job(number: str, status: str, error: str = "") -> None:
        record_job(sweep, JobOutcome(number, status, error, ["model.base_filters=4", f"data.fold={number}"]))

    def run(number: str, status: str, val_miou: float) -> str:
        run_id = client.create_run(experiment, tags={PARENT_TAG: parent, JOB_TAG: number}).info.run_id
        client.log_metric(run_id, "val_miou", val_miou, step=1)
        client.set_terminated(run_id, status)
        return run_id

    run("0", "FINISHED", 0.5)
    job("0", COMPLETED)
    job("1", FAILED, "data.fold=1: refused")  # before its MLflow run existed
    raised = run("2", "FAILED", 0.1)
    job("2", FAILED, "ValueError: boom")
    job("3", RUNNING)  # started; still running, or its process died

    during = summarize(children(client, parent), job_outcomes(sweep))
    assert (during.metrics["children_finished"], during.metrics["children_failed"]) == (1, 2)
    ended = log_summary(client, parent, tmp_path / "summary", job_outcomes(sweep), ended=True)
    assert ended.failed == [
        ("job 2 (data.fold=2)", "ValueError: boom"),
        ("job 1 (data.fold=1)", "data.fold=1: refused"),
        ("job 3 (data.fold=3)", "did not finish"),
    ]
    assert ended.metrics["val_miou_mean"] == pytest.approx(0.5)
    assert close_parent(client, parent, ended) == "FAILED"
    assert client.get_run(parent).data.tags["failed_children"] == "; ".join(label for label, _ in ended.failed)

    # the same sweep again, where the failed jobs succeed: job 2 resumes into its run
    open_parent(tracker, sweep, "data.fold=0,1,2,3")
    for number, val_miou in (("1", 0.7), ("3", 0.3)):
        run(number, "FINISHED", val_miou)
        job(number, COMPLETED)
    client.update_run(raised, status="RUNNING")
    client.log_metric(raised, "val_miou", 0.6, step=2)
    client.set_terminated(raised, "FINISHED")
    job("2", COMPLETED)
    again = summarize(children(client, parent), job_outcomes(sweep), ended=True)
    assert (again.metrics["children_finished"], again.metrics["children_failed"], again.failed) == (4, 0, [])
    assert again.metrics["val_miou_mean"] == pytest.approx(0.525) and again.tags["failed_children"] == "-"
    assert close_parent(client, parent, again) == "FINISHED"
    lines = describe(again, parent, "FINISHED", EXPERIMENT, "http://ui/#/experiments/1/runs/p").splitlines()
    assert lines[1:3] == [
        "Study FINISHED: 4 children finished, 0 failed",
        f"val_miou: 0.5250 +- {again.metrics['val_miou_ci95']:.4f} (mean +- 95 % CI) over the finished children's "
        "final weights",
    ]
    assert lines[3].startswith("Best:     val_miou 0.7000, job 1 (data.fold=1), run ")
    assert lines[4] == f"MLflow:   parent run {parent} in experiment '{EXPERIMENT}'"
    assert lines[5] == "Open it:  http://ui/#/experiments/1/runs/p"


@pytest.mark.slow
def test_a_job_refused_before_its_run_exists_fails_the_study_and_the_command(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    command = _sweep_command(tmp_path / "sweep", uri, "data.folds=2", "data.fold=0,5")
    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    _, [parent], [run] = _study(uri)
    assert (parent.info.status, run.info.status) == ("FAILED", "FINISHED")
    assert parent.data.metrics["children_finished"] == 1 and parent.data.metrics["children_failed"] == 1
    assert parent.data.tags["failed_children"] == "job 1 (data.fold=5)"
    assert parent.data.metrics["val_miou_mean"] == pytest.approx(run.data.metrics["val_miou"])
    refused = "data.fold=5: must be one of 0..1 with data.folds=2"
    assert f"error: {refused}" in result.stderr
    assert f"Study FAILED: 1 children finished, 1 failed\n  failed: job 1 (data.fold=5): {refused}\n" in result.stdout
    best = f"Best:     val_miou {run.data.metrics['val_miou']:.4f}, job 0 (data.fold=0), run {run.info.run_id}"
    assert best in result.stdout and f"parent run {parent.info.run_id}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_job_that_raises_fails_the_study_with_the_summary_of_the_others(tmp_path, launcher):
    """Hydra's sweeper re-raises a job's error after the batch, skipping the multirun's end."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    overrides = ["optimizer=sgd,adam", "+optimizer.amsgrad=false", f"hydra/launcher={launcher}"]
    command = _sweep_command(tmp_path / "sweep", uri, *overrides)
    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    _, [parent], runs = _study(uri)
    status = {r.data.tags[JOB_TAG]: r.info.status for r in runs}
    assert (parent.info.status, status) == ("FAILED", {"0": "FAILED", "1": "FINISHED"})
    adam = next(r for r in runs if r.data.tags[JOB_TAG] == "1")
    assert parent.data.metrics["children_finished"] == 1 and parent.data.metrics["children_failed"] == 1
    assert parent.data.metrics["val_miou_mean"] == pytest.approx(adam.data.metrics["val_miou"])
    assert parent.data.tags["failed_children"] == "job 0 (optimizer=sgd)"
    assert "Study FAILED: 1 children finished, 1 failed\n  failed: job 0 (optimizer=sgd): " in result.stdout
    assert "Argument(s) not recognized: {'amsgrad': False}" in result.stdout


def _epochs_done(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoints" / "state.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


@pytest.mark.slow
def test_a_sweep_killed_in_its_second_job_completes_with_the_same_command(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep = tmp_path / "sweep"
    command = _sweep_command(sweep, uri, "trainer.epochs=2", "seed=1,2,3,4")
    _start_and_kill_in_job_1(command, sweep)
    client, _, before = _study(uri)
    first = next(r for r in before if r.data.tags["sweep_job"] == "0")

    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already finished 2 epochs" in result.stdout  # job 0 is not retrained
    client, parents, runs = _study(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags[PARENT_TAG] for r in runs} == {parents[0].info.run_id}
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:  # every epoch logged once
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")] == [1, 2]
    assert client.get_run(first.info.run_id).info.end_time == first.info.end_time  # untouched
    assert parents[0].data.metrics["children_finished"] == 4


def _start_and_kill_in_job_1(command: list[str], sweep: Path) -> None:
    """Start a sweep and SIGKILL it while its second job (number 1) trains."""
    process = subprocess.Popen(
        command, env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while _epochs_done(sweep / "1") < 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the sweep ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert _epochs_done(sweep / "1") < 2 and not (sweep / "2").exists()  # killed while job 1 trained


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_ends_its_parent_killed_and_the_command_with_130(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep = tmp_path / "sweep"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = _sweep_command(sweep, uri, "trainer.epochs=3", "seed=1,2")
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, env=quiet_env(), stdout=stdout, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 300
        while _epochs_done(sweep / "0") < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=300) == 130, err.read_text()[-3000:]
    _, [parent], [run] = _study(uri)
    assert (parent.info.status, run.info.status) == ("KILLED", "KILLED")  # job 1 never started
    summary = out.read_text().split("Study KILLED: 0 children finished, 1 failed\n")[1]  # one job: all its overrides
    assert summary.startswith("  failed: job 0 (model.base_filters=4 ") and "seed=1): its run is KILLED\n" in summary


@pytest.mark.slow
def test_a_killed_optuna_search_continues_its_trials(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sweep = tmp_path / "sweep"
    command = _sweep_command(sweep, uri, "trainer.epochs=2", "hparams_search=focal_optuna", "hydra.sweeper.n_trials=3")
    _start_and_kill_in_job_1(command, sweep)
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    killed = optuna.load_study(study_name="focal_recipe", storage=storage).get_trials()
    assert [t.state for t in killed] == [TrialState.COMPLETE, TrialState.RUNNING]

    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="focal_recipe", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # no trial lost, none added
    assert [t.params for t in trials[:2]] == [t.params for t in killed]  # the killed trial went on as it was
    assert trials[0].datetime_complete == killed[0].datetime_complete  # the finished one was not retrained
    client, parents, runs = _study(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")] == [1, 2]
    by_job = {r.data.tags["sweep_job"]: r.data.metrics["val_miou"] for r in runs}
    assert [t.value for t in trials] == pytest.approx([by_job["0"], by_job["1"], by_job["2"]])


@pytest.mark.slow
def test_a_3_fold_study_is_one_parent_with_3_finished_children_and_its_summary(tmp_path):
    """study=kfold on parallel joblib workers: each process finds the parent in the sweep folder."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    command = _sweep_command(
        tmp_path / "sweep", uri, "study=kfold", "data.folds=3", "data.dataset.test_size=4", "hydra/launcher=joblib"
    )
    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _, parents, runs = _study(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.info.run_name == "unet sweep: fold"
    assert sorted(r.info.run_name for r in runs) == ["fold=0", "fold=1", "fold=2"]
    assert parent.data.tags["sweep_dir"] == str((tmp_path / "sweep").resolve())
    assert sorted(r.data.params["data.fold"] for r in runs) == ["0", "1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags[PARENT_TAG] for r in runs} == {parent.info.run_id}
    finals = [r.data.metrics["val_miou"] for r in runs]
    summary = interval(finals)
    metrics = parent.data.metrics
    assert metrics["val_miou_mean"] == pytest.approx(summary["mean"])
    assert metrics["val_miou_ci95"] == pytest.approx(summary["ci95"])
    assert metrics["val_miou_best"] == pytest.approx(max(finals))
    assert metrics["test_miou_mean"] == pytest.approx(statistics.fmean(r.data.metrics["test_miou"] for r in runs))
    assert "test_miou_best" not in metrics  # nothing is selected on test
    assert {f"val_iou/{c}_mean" for c in ("background", "disc", "cross")} <= set(metrics)
    assert metrics["children_finished"] == 3


@pytest.mark.parametrize("experiment", [None, *sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))])
def test_the_study_presets_compose_with_every_experiment(experiment):
    extra = [f"experiment={experiment}"] if experiment else []
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        kfold = compose("train", [*extra, "study=kfold"], return_hydra_config=True)
        seeds = compose("train", [*extra, "study=seeds", "study.seeds=3"], return_hydra_config=True)
    assert kfold.data.folds == 5 and kfold.hydra.sweeper.params["data.fold"] == "range(0,5)"
    assert seeds.hydra.sweeper.params["seed"] == "range(0,3)"
