"""Nothing lost: kills, resume, atomic checkpoints, determinism, NaN, Ctrl-C, failing sweep jobs."""

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from animalseg.errors import ConfigError, TrainingError
from animalseg.files import atomic_save
from animalseg.run import check_same_run
from animalseg.training.callbacks import NanGuard
from tests.helpers import ROOT, TINY, compose_config, quiet_env, train_command

pytestmark = pytest.mark.slow
# 4 deterministic epochs of a tiny U-Net: a few seconds each, long enough to be killed mid-epoch
RUN = [
    *TINY,
    "data.dataset.train_size=48",
    "trainer.epochs=4",
    "trainer.deterministic=true",
    "logger.experiment_name=reliability",
]


def _train(run_dir: Path, uri: str, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(run_dir, uri, *RUN, *extra), env=quiet_env(**env), capture_output=True, text=True, timeout=600
    )


def _epochs_done(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoints" / "state.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def _start_and_kill(
    run_dir: Path, uri: str, when, *extra: str, sig=signal.SIGKILL, **env: str
) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a full pipe would block the run
        process = subprocess.Popen(
            train_command(run_dir, uri, *RUN, *extra), env=quiet_env(**env), stdout=subprocess.DEVNULL, stderr=stderr
        )
        deadline = time.monotonic() + 300
        while not when() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(sig)
        process.wait(timeout=120)
        stderr.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, None, stderr.read())


def _runs(uri: str):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("reliability").experiment_id])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted deterministic run."""
    tmp = tmp_path_factory.mktemp("reference")
    uri = f"sqlite:///{tmp / 'm.db'}"
    result = _train(tmp / "run", uri)
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = _runs(uri)
    return client.get_metric_history(runs[0].info.run_id, "val_miou")


def _assert_same_run_same_result(uri: str, reference) -> None:
    client, runs = _runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "val_miou")
    assert [m.step for m in history] == [1, 2, 3, 4]  # no missing and no duplicated epoch
    for resumed, uninterrupted in zip(history, reference, strict=True):
        assert resumed.value == pytest.approx(uninterrupted.value, abs=1e-6)


def test_two_fresh_runs_with_the_same_seed_agree(reference, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert _train(tmp_path / "run", uri).returncode == 0
    client, runs = _runs(uri)
    again = client.get_metric_history(runs[0].info.run_id, "val_miou")
    assert [m.value for m in again] == pytest.approx([m.value for m in reference], abs=1e-6)


def test_sigkill_mid_epoch_then_the_same_command_resumes_to_the_same_result(reference, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"
    _start_and_kill(run_dir, uri, lambda: _epochs_done(run_dir) >= 2)
    assert 2 <= _epochs_done(run_dir) < 4
    result = _train(run_dir, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_run_same_result(uri, reference)
    again = _train(run_dir, uri)  # a finished run does not retrain
    assert again.returncode == 0 and "already finished 4 epochs" in again.stdout


def test_sigkill_mid_save_leaves_loadable_checkpoints_and_resumes(reference, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"

    def saving_after_first_epoch() -> bool:  # a temp file of epoch >= 2 exists, not yet renamed
        return _epochs_done(run_dir) >= 1 and any(checkpoints.glob(".*.tmp*"))

    _start_and_kill(run_dir, uri, saving_after_first_epoch, ANIMALSEG_SAVE_PAUSE="1.0")
    assert any(checkpoints.glob(".*.tmp*"))  # killed with a half-done save on disk
    for name in ("best.keras", "last.keras"):
        keras.models.load_model(checkpoints / name)  # complete files, never truncated ones
    result = _train(run_dir, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_run_same_result(uri, reference)


def test_sigkill_while_reporting_then_the_same_command_reports_and_closes_the_run(reference, tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"

    def reporting() -> bool:  # every epoch trained; plots, checkpoints, the MLflow Model being logged
        try:
            return json.loads((run_dir / "checkpoints" / "state.json").read_text())["finished"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    _start_and_kill(run_dir, uri, reporting, "logger.log_model=true")
    _client, runs = _runs(uri)
    assert runs[0].info.status == "RUNNING"  # killed before it could close its run
    result = _train(run_dir, uri, "logger.log_model=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished: val_miou" in result.stdout  # reported, not "already finished"
    _assert_same_run_same_result(uri, reference)
    client, runs = _runs(uri)
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "checkpoints")} >= {"checkpoints/last.keras"}
    assert client.get_run(runs[0].info.run_id).outputs.model_outputs  # the final weights' MLflow Model
    assert "already finished 4 epochs" in _train(run_dir, uri, "logger.log_model=true").stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_marks_the_run_killed_and_the_same_command_resumes(reference, tmp_path, sig):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"
    stopped = _start_and_kill(run_dir, uri, lambda: _epochs_done(run_dir) >= 1, sig=sig)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr
    assert "interrupted: stopped at a step boundary" in stopped.stderr and "same command resumes" in stopped.stderr
    _client, runs = _runs(uri)
    assert runs[0].info.status == "KILLED"
    keras.models.load_model(run_dir / "checkpoints" / "last.keras")
    assert _train(run_dir, uri).returncode == 0
    _assert_same_run_same_result(uri, reference)


def test_nan_loss_stops_with_epoch_and_step_and_marks_the_run_failed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = _train(tmp_path / "run", uri, "optimizer.learning_rate=1e30")
    assert result.returncode == 1
    assert "error: the training loss became nan at epoch 1, step" in result.stderr
    assert "Traceback" not in result.stderr
    _, runs = _runs(uri)
    assert runs[0].info.status == "FAILED"


def test_nan_guard_names_epoch_and_step():
    guard = NanGuard()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(TrainingError, match="epoch 3, step 5"):
        guard.on_train_batch_end(4, {"loss": float("inf")})


def test_a_failing_sweep_job_is_failed_and_the_other_finishes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            *TINY,
            "optimizer.learning_rate=1e30,1e-3",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=reliability",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "the training loss became nan" in result.stderr
    _, found = _runs(uri)
    [parent] = [r for r in found if r.data.tags.get("run_kind") == "study"]
    statuses = {r.data.params["optimizer.learning_rate"]: r.info.status for r in found if r is not parent}
    assert statuses == {"1e+30": "FAILED", "0.001": "FINISHED"}
    # the study counts and names the failed job, and its summary is the finished one alone
    assert parent.info.status == "FAILED" and parent.data.metrics["children_failed"] == 1
    assert "optimizer.learning_rate=1e+30" in parent.data.tags["failed_children"]
    assert parent.data.metrics["children_finished"] == 1 and "val_miou_std" not in parent.data.metrics


def test_resuming_with_another_architecture_is_refused(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run_dir = tmp_path / "run"
    _start_and_kill(run_dir, uri, lambda: _epochs_done(run_dir) >= 1)
    result = _train(run_dir, uri, "model=attention_unet")
    assert result.returncode == 2 and "holds a run with other settings" in result.stderr
    assert "model._target_" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_checkpoint_keeps_the_previous_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "best.keras"
    atomic_save(model, path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    with pytest.raises(TrainingError, match="No space left on device"):
        atomic_save(model, path)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*tmp*"))


def test_unwritable_output_dir_is_a_clear_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _train(blocker / "run", f"sqlite:///{tmp_path / 'm.db'}")
    assert result.returncode == 2 and "error: hydra.run.dir=" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is visible")
@pytest.mark.parametrize(
    ("option", "instead"),
    [
        ("gpu", "use hardware=cpu"),
        ("p100", "use hardware=cpu"),
        ("multi_gpu", "use hardware=cpu, or hardware.distribution.logical_cpus=2"),
    ],
)
def test_an_option_that_needs_a_gpu_stops_in_one_line_on_a_machine_without_one(tmp_path, option, instead):
    result = _train(tmp_path / "run", f"sqlite:///{tmp_path / 'm.db'}", f"hardware={option}")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"hardware={option}: needs a GPU" in errors[0] and instead in errors[0], errors
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_saved_before_an_option_existed_still_resumes(tmp_path):
    cfg = compose_config(TINY)
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["hardware"]["lr_scaling"]  # a run from before hardware.lr_scaling was added
    OmegaConf.save(saved, tmp_path / "config.yaml")
    check_same_run(tmp_path / "config.yaml", cfg)
    with pytest.raises(ConfigError, match="model.base_filters: 4 → 8"):
        check_same_run(tmp_path / "config.yaml", compose_config([*TINY, "model.base_filters=8"]))


def test_a_run_saved_before_the_model_owned_its_inference_settings_still_resumes(tmp_path):
    """Its config names the TTA class at its old path and gives the evaluation callback a tta."""
    cfg = compose_config([*TINY, "tta=flip"])
    saved = OmegaConf.to_container(cfg, resolve=True)
    saved["tta"]["_target_"] = "animalseg.training.evaluation.TestTimeAugmentation"
    saved["callbacks"]["evaluation"]["tta"] = dict(saved["tta"])
    del saved["inference"]
    OmegaConf.save(saved, tmp_path / "config.yaml")
    check_same_run(tmp_path / "config.yaml", cfg)
    with pytest.raises(ConfigError, match="tta.flip: True → False"):
        check_same_run(tmp_path / "config.yaml", compose_config(TINY))
