"""Beyond one process: 2-worker MultiWorkerMirroredStrategy and 2-replica MirroredStrategy on
localhost against single-process training, and a parallel sweep logging to a real MLflow server."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

import animalseg.models  # noqa: F401  (registers the model classes that load_model reads)
from animalseg.config import validate_config
from animalseg.errors import ConfigError
from animalseg.training.distribution import Mirrored, MultiWorker, read_tf_config
from animalseg.training.hardware import Hardware
from tests.helpers import CONF, ROOT, TINY, compose_config, quiet_env, train_command

pytestmark = pytest.mark.slow
EXPERIMENT = "distributed"
# SGD, not Adam: Adam's normalisation would hide gradients that are off by the replica count.
RUN = [*TINY, "optimizer=sgd", "trainer.epochs=2", f"logger.experiment_name={EXPERIMENT}"]
# What a CPU-only run needs (the multi_* configs default to a GPU's mixed precision and XLA), and
# the learning rate as tuned for this batch (no scaling).
ON_CPU = ["hardware.precision=float32", "hardware.jit_compile=false", "hardware.lr_scaling=none"]
TIMEOUT = 300


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _free_port_pair() -> int:
    """A free port whose successor is free too (SLURM tasks listen on port_base + task index)."""
    while True:
        base = _free_ports(1)[0]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base


def _tf_config(count: int):
    """Per-worker environments of a ``count``-worker TF_CONFIG cluster on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(count)]}
    return lambda index: {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}


def _run_workers(
    run_dir: Path,
    uri: str,
    *extra: str,
    count: int = 2,
    chief_extra: tuple[str, ...] = (),
    environment=None,
    on_cpu: tuple[str, ...] = tuple(ON_CPU),
) -> list[subprocess.CompletedProcess]:
    """``count`` processes of one MultiWorkerMirroredStrategy cluster on 127.0.0.1 (TF_CONFIG, or
    ``environment(index)``), the same command (plus ``chief_extra`` for worker 0), with ``on_cpu``'s
    hardware settings."""
    environment = environment or _tf_config(count)
    threads = "hardware.intra_op_threads=1"  # two processes share 2 cores
    command = train_command(run_dir, uri, *RUN, "hardware=multi_worker", *on_cpu, threads, *extra)
    logs = [(run_dir.parent / f"worker{index}.out", run_dir.parent / f"worker{index}.err") for index in range(count)]
    processes = []
    for index, (out, err) in enumerate(logs):
        with out.open("w") as stdout, err.open("w") as stderr:
            processes.append(
                subprocess.Popen(
                    command + list(chief_extra if index == 0 else ()),
                    env=quiet_env(**environment(index)),
                    stdout=stdout,
                    stderr=stderr,
                    text=True,
                    start_new_session=True,
                )
            )
    deadline = time.monotonic() + TIMEOUT
    while any(process.poll() is None for process in processes) and time.monotonic() < deadline:
        if any(process.poll() not in (None, 0) for process in processes):  # a failed worker: the rest
            deadline = min(deadline, time.monotonic() + 30)  # would wait for it forever
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return [
        subprocess.CompletedProcess(command, process.returncode, out.read_text(), err.read_text())
        for process, (out, err) in zip(processes, logs, strict=True)
    ]


def _history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())["history"]


def _runs(uri: str):
    client = MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])


def _assert_matches(run_dir: Path, reference: Path) -> None:
    """Same global batches, same steps: per-epoch losses and val scores, and final weights, agree
    up to the order of floating-point sums (and Keras's CE averaging each replica's valid pixels)."""
    history, expected = _history(run_dir), _history(reference)
    assert len(history) == len(expected)
    for got, want in zip(history, expected, strict=True):
        for key in ("loss", "sem_logits_loss", "boundary_logits_loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=5e-3), key
        assert got["val_miou"] == pytest.approx(want["val_miou"], abs=5e-3)
        assert got["lr"] == want["lr"]
    weights = keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False).get_weights()
    reference_weights = keras.models.load_model(reference / "checkpoints" / "last.keras", compile=False).get_weights()
    for got, want in zip(weights, reference_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=0.02, atol=2e-3)


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> Path:
    """The same training in one process on one device."""
    tmp = tmp_path_factory.mktemp("single")
    result = subprocess.run(
        train_command(tmp / "run", f"sqlite:///{tmp / 'm.db'}", *RUN),
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


def test_two_workers_train_as_one_process_and_only_the_chief_logs_and_saves(single_process, tmp_path):
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'm.db'}"
    chief, worker = _run_workers(run_dir, uri)
    assert chief.returncode == 0, chief.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "Finished: val_miou" in chief.stdout and "Finished" not in worker.stdout
    assert "worker 1 of a 2-replica run" in worker.stdout
    client, runs = _runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["hardware.replicas"] == "2"
    _assert_matches(run_dir, single_process)
    first_two_epochs = _history(run_dir)

    # more epochs: every worker resumes from the chief's checkpoint, into the same MLflow run
    chief, worker = _run_workers(run_dir, uri, "trainer.epochs=3")
    assert chief.returncode == 0 and worker.returncode == 0, chief.stderr[-2000:] + worker.stderr[-2000:]
    assert "Resuming" in chief.stdout
    client, runs = _runs(uri)
    assert len(runs) == 1
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [1, 2, 3]
    assert _history(run_dir)[:2] == first_two_epochs and len(_history(run_dir)) == 3


def test_cpu_workers_train_with_multi_worker_as_it_comes(tmp_path):
    """No GPU, hardware=multi_worker as composed (a GPU's mixed float16 and XLA): every worker
    trains in float32 without XLA (XLA has no CPU collectives) and says so in one line."""
    results = _run_workers(tmp_path / "run", f"sqlite:///{tmp_path / 'm.db'}", "trainer.epochs=1", on_cpu=())
    said = "hardware=multi_worker: no GPU on this worker; training on the CPU in float32 without XLA"
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.count(said) == 1, result.stdout[-3000:]


def test_workers_with_different_settings_refuse_to_start(tmp_path):
    results = _run_workers(tmp_path / "run", f"sqlite:///{tmp_path / 'm.db'}", chief_extra=("seed=7",))
    for result in results:
        assert result.returncode == 2, result.stderr[-2000:]
        assert "same hydra.run.dir" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.db").exists()  # nothing logged, nothing trained


def test_two_tasks_of_a_slurm_job_step_train_as_one_process(single_process, tmp_path):
    """The SLURM path (hardware.distribution.cluster=slurm, as hydra/launcher=slurm starts tasks):
    two tasks of one job step on a 2-GPU node, from the variables srun sets (the resolver gives each
    task one GPU; here there are none, so both train on the CPU)."""
    port_base = _free_port_pair()
    slurm = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_STEP_TASKS_PER_NODE": "2"}
    results = _run_workers(
        tmp_path / "run",
        f"sqlite:///{tmp_path / 'm.db'}",
        "hardware.distribution.cluster=slurm",
        f"hardware.distribution.port_base={port_base}",
        environment=lambda index: {**slurm, "SLURM_PROCID": str(index), "CUDA_VISIBLE_DEVICES": "0,1"},
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert len(_runs(f"sqlite:///{tmp_path / 'm.db'}")[1]) == 1
    _assert_matches(tmp_path / "run", single_process)


def test_multi_gpu_mirrors_over_two_logical_cpus_as_one_device(single_process, tmp_path):
    run_dir = tmp_path / "run"
    extra = ["hardware=multi_gpu", "hardware.distribution.logical_cpus=2", *ON_CPU]
    result = subprocess.run(
        train_command(run_dir, f"sqlite:///{tmp_path / 'm.db'}", *RUN, *extra),
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_matches(run_dir, single_process)


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path):
    extra = ["hardware=multi_gpu", "hardware.distribution.logical_cpus=2", *ON_CPU, "data.batch_size=5"]
    command = train_command(tmp_path / "run", f"sqlite:///{tmp_path / 'm.db'}", *RUN, *extra)
    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert "data.batch_size=5: the global batch must split evenly over the 2 replicas" in result.stderr
    assert "Traceback" not in result.stderr


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="hardware=multi_worker: set TF_CONFIG on every worker"):
        MultiWorker().setup()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not one of the cluster's jobs"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "task index 3"),
    ],
)
def test_a_bad_tf_config_is_named(monkeypatch, value, problem):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError, match=problem):
        read_tf_config()


@pytest.mark.parametrize(("rule", "factor"), [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
def test_learning_rate_scales_with_the_global_batch(rule, factor):
    hardware = Hardware(lr_scaling=rule, reference_batch_size=8)
    assert hardware.learning_rate(1e-3, 32) == pytest.approx(1e-3 * factor)


def test_the_distributed_hardware_options_compose():
    mirrored = instantiate(compose_config(["hardware=multi_gpu"]).hardware)
    assert isinstance(mirrored.distribution, Mirrored) and mirrored.distribution.sync_batchnorm
    assert mirrored.lr_scaling == "none"  # the same rate as hardware=gpu unless asked
    worker = instantiate(compose_config(["hardware=multi_worker", "hardware.distribution.communication=ring"]).hardware)
    assert isinstance(worker.distribution, MultiWorker) and worker.distribution.communication == "ring"
    with pytest.raises(ConfigError, match="hardware.lr_scaling='cubic': must be one of none, linear, sqrt"):
        validate_config(compose_config(["hardware.lr_scaling=cubic"]))


@pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")  # on purpose, see cli.py
@pytest.mark.parametrize(
    ("launcher", "target"),
    [
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_the_launchers_compose(launcher, target):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    instantiate(cfg.hydra.launcher)  # the plugin is installed and takes every key


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on 127.0.0.1 (SQLite store, artifacts proxied to a folder), stopped after."""
    port = _free_ports(1)[0]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield uri, tmp_path / "artifacts"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_a_parallel_sweep_logs_every_job_to_one_mlflow_server(mlflow_server, tmp_path):
    uri, artifacts = mlflow_server
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hydra/launcher=joblib",
        *TINY,
        "loss.boundary_weight=0.3,1.0",
        f"logger.tracking_uri={uri}",
        f"logger.experiment_name={EXPERIMENT}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    result = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    client, found = _runs(uri)
    [parent] = [r for r in found if r.data.tags.get("run_kind") == "study"]  # one study on the server
    runs = [r for r in found if r is not parent]
    assert parent.info.status == "FINISHED" and parent.data.metrics["children_finished"] == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert sorted(run.data.params["loss.boundary_weight"] for run in runs) == ["0.3", "1.0"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")] == [1]
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"checkpoints", "config", "plots"}
        assert run.data.tags["sweep_dir"] == str((tmp_path / "sweep").resolve())
    assert len(list(artifacts.rglob("best.keras"))) == 2  # uploaded through the server, not written beside
