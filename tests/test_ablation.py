"""Experiments, sweeps grouped in MLflow, evaluate.py, predict.py and compare_runs.py."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from PIL import Image

from animalseg.build import build_loss, build_trainer, instantiate_callbacks, instantiate_optimizer
from tests.helpers import CONF, ROOT, TINY, compose_config

EXPERIMENTS = sorted(
    str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml")
)


def _run(script, *args, cwd=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_report_experiments_exist():
    assert {
        "baseline_unet",
        "attention_unet",
        "efficientnet_unet",
        "ablation_cpu/baseline_unet",
        "ablation_cpu/attention_unet",
        "ablation_cpu/efficientnet_unet",
    } <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_its_parts_instantiate(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.data.dataset._target_.endswith("VOCDataset")
    # a run passes the resolved loss.class_weights; counting `auto` needs the images, so ones stand in
    setting = cfg.loss.get("class_weights")
    build_loss(cfg.loss, ignore_index=255, class_weights=[1.0] * 7 if isinstance(setting, str) else setting)
    instantiate_callbacks(cfg)
    for group in ("augmentation", "hardware"):
        instantiate(cfg[group])
    build_trainer(cfg)
    schedule = instantiate(cfg.schedule)(learning_rate=cfg.optimizer.learning_rate, steps_per_epoch=44)
    instantiate_optimizer(cfg.optimizer, learning_rate=schedule.learning_rate)


REPORT_RECIPES = {  # experiment: (loss, alpha, gamma, boundary weight, schedule, LR, epochs, augmentation ops)
    "baseline_unet": ("ce", None, None, 1.0, "constant", 1e-3, 50, 3),
    "attention_unet": ("focal", 0.25, 2.0, 1.0, "constant", 1e-3, 150, 3),
    "efficientnet_unet": ("focal", 0.75, 3.0, 0.3, "warmup_step", 5e-4, 100, 3),
    "ablation_cpu/baseline_unet": ("ce", None, None, 1.0, "constant", 1e-3, 8, 3),
    "ablation_cpu/attention_unet": ("focal", 0.25, 2.0, 1.0, "constant", 1e-3, 12, 3),
    "ablation_cpu/efficientnet_unet": ("focal", 0.75, 3.0, 0.3, "warmup_step", 5e-4, 20, 3),
}


@pytest.mark.parametrize("experiment", sorted(REPORT_RECIPES))
def test_the_report_recipes_do_not_move_with_the_defaults(experiment):
    """The defaults changed (focal alpha null, cosine schedule); the report's rows pin theirs."""
    cfg = compose_config([f"experiment={experiment}"])
    loss = cfg.loss
    (name,) = loss.terms
    recipe = (
        name,
        loss.terms[name].get("alpha"),
        loss.terms[name].get("gamma"),
        loss.boundary_weight,
        cfg.schedule._target_.rpartition(".")[2],
        cfg.optimizer.learning_rate,
        cfg.trainer.epochs,
        len(cfg.augmentation.ops),
    )
    assert recipe == REPORT_RECIPES[experiment]


def test_experiments_carry_the_reports_hyper_parameters():
    rows = {e: compose_config([f"experiment={e}"]) for e in ("baseline_unet", "attention_unet", "efficientnet_unet")}
    assert [rows[e].optimizer.learning_rate for e in rows] == [1e-3, 1e-3, 5e-4]
    assert [list(rows[e].loss.terms) for e in rows] == [["ce"], ["focal"], ["focal"]]
    attention, efficientnet = rows["attention_unet"].loss.terms.focal, rows["efficientnet_unet"].loss.terms.focal
    assert (attention.alpha, attention.gamma, efficientnet.alpha, efficientnet.gamma) == (0.25, 2.0, 0.75, 3.0)
    assert [rows[e].loss.boundary_weight for e in rows] == [1.0, 1.0, 0.3]
    assert all(len(rows[e].augmentation.ops) == 3 for e in rows)
    assert rows["efficientnet_unet"].schedule._target_.endswith("warmup_step")
    assert [rows[e].schedule._target_.rpartition(".")[2] for e in rows] == ["constant", "constant", "warmup_step"]
    assert ["ema" in rows[e].callbacks for e in rows] == [False, False, False]
    p100 = compose_config(["experiment=efficientnet_unet", "hardware=p100"])
    assert (p100.data.crop_size, p100.data.batch_size, p100.hardware.precision) == (512, 8, "float32")
    assert p100.loss.terms.focal.alpha == 0.75  # hardware never changes the science


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    result = _run(
        "train.py",
        "-m",
        *TINY,
        "loss=focal",
        "loss.terms.focal.alpha=0.25,0.75",
        "logger.log_model=true",  # the UI test reads the logged models' linked metrics
        f"logger.tracking_uri={uri}",
        "logger.experiment_name=sweep",
        f"hydra.sweep.dir={tmp / 'multirun'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, uri


def _api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/ajax-api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_the_mlflow_ui_shows_short_names_the_parents_params_datasets_and_the_models_scores(sweep, tmp_path):
    """``mlflow ui`` over the sweep, read through the REST API the UI itself calls (and, where
    Chromium is installed, a screenshot of the runs table)."""
    from scripts.ui_screenshots import free_port, pages, shoot, start_ui

    _, uri = sweep
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_ui(uri, port)
    try:
        experiment = _api(base, "experiments/get-by-name?experiment_name=sweep")["experiment"]["experiment_id"]
        runs = _api(base, "runs/search", {"experiment_ids": [experiment]})["runs"]
        by_name = {r["info"]["run_name"]: r for r in runs}
        assert set(by_name) == {"unet sweep: alpha", "alpha=0.25", "alpha=0.75"}
        parent = by_name["unet sweep: alpha"]
        params = {p["key"]: p["value"] for p in parent["data"]["params"]}
        assert params["loss.terms.focal.gamma"] and "loss.terms.focal.alpha" not in params
        child = by_name["alpha=0.25"]
        names = {d["dataset"]["name"] for d in child["inputs"]["dataset_inputs"]}
        assert names == {"synthetic-train", "synthetic-val"}
        assert "val_iou/background" in {m["key"] for m in child["data"]["metrics"]}
        models = _api(base, "logged-models/search", {"experiment_ids": [experiment]})["models"]
        (model,) = [m for m in models if m["info"]["source_run_id"] == child["info"]["run_id"]]
        linked = {m["key"]: m for m in model["data"]["metrics"]}
        assert linked["val_miou"]["dataset_name"] == "synthetic-val"
        if shutil.which("chromium"):
            urls = pages(uri, "sweep", base)
            shoot(urls["runs_table"], tmp_path / "runs.png", wait_ms=10000)
            assert (tmp_path / "runs.png").stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def _a_job(client: MlflowClient):
    """One job's run of the sweep (not its parent run)."""
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    return next(r for r in runs if r.data.tags.get("run_kind") != "study")


@pytest.mark.slow
def test_a_sweep_logs_one_finished_run_per_job_grouped_by_a_tag(sweep):
    tmp, uri = sweep
    client = MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    [parent] = [r for r in found if r.data.tags.get("run_kind") == "study"]  # the sweep's parent run
    runs = [r for r in found if r is not parent]
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {r.data.params["loss.terms.focal.alpha"] for r in runs} == {"0.25", "0.75"}
    assert {r.data.tags["sweep_dir"] for r in runs} == {str((tmp / "multirun").resolve())}
    assert sorted(r.info.run_name for r in runs) == ["alpha=0.25", "alpha=0.75"]  # the swept key alone
    assert all("loss.terms.focal.alpha=" in r.data.tags["overrides"] for r in runs)
    assert (parent.info.run_name, parent.data.tags["swept"]) == ("unet sweep: alpha", "loss.terms.focal.alpha")
    assert (
        parent.data.params["loss.terms.focal.gamma"] == runs[0].data.params["loss.terms.focal.gamma"]
    )  # what the children share
    assert "loss.terms.focal.alpha" not in parent.data.params


@pytest.mark.slow
def test_evaluate_reproduces_the_logged_val_miou(sweep):
    _, uri = sweep
    client = MlflowClient(uri)
    run = _a_job(client)
    result = _run(
        "evaluate.py",
        f"run_id={run.info.run_id}",
        f"logger.tracking_uri={uri}",
        "log_to_mlflow=true",
        f"hydra.run.dir={sweep[0] / 'eval'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logged = client.get_run(run.info.run_id).data.metrics
    assert logged["eval_val_miou"] == pytest.approx(logged["val_best/miou"], abs=1e-6)
    assert "mIoU" in result.stdout and (sweep[0] / "eval" / "eval_val_confusion_matrix.png").is_file()
    assert not list((sweep[0] / "eval").rglob("*.keras"))  # the run's checkpoint is read where it is


@pytest.mark.slow
def test_predict_writes_three_outputs_for_odd_sized_images(sweep, tmp_path):
    _, uri = sweep
    client = MlflowClient(uri)
    run = _a_job(client)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (37, 53)), ("b.jpg", (61, 29))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(photos / name)
    result = _run(
        "predict.py",
        f"run_id={run.info.run_id}",
        f"logger.tracking_uri={uri}",
        f"input={photos}",
        f"output_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for stem, size in (("a", (37, 53)), ("b", (61, 29))):
        mask = np.array(Image.open(tmp_path / "out" / f"{stem}_mask.png"))
        assert mask.shape == size and mask.max() < 7
        assert np.array(Image.open(tmp_path / "out" / f"{stem}_color.png")).shape == (*size, 3)
        overlaid = np.array(Image.open(tmp_path / "out" / f"{stem}_overlay.png"))
        assert overlaid.shape[0] > size[0] and overlaid.shape[1] >= size[1]  # the photo and a legend below it
    assert (tmp_path / "out" / "legend.png").is_file()
    assert not list(tmp_path.rglob("*.keras"))  # no copy of the checkpoint (optimizer state included)


@pytest.mark.slow
def test_compare_runs_writes_the_table(sweep, tmp_path):
    _, uri = sweep
    result = _run("scripts/compare_runs.py", "--experiment", "sweep", "--tracking-uri", uri, "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = Path(tmp_path / "sweep" / "comparison.md").read_text()
    assert table.count("| alpha=0.25 |") == 1 and table.count("| alpha=0.75 |") == 1  # the runs' names
    assert table.count("focal.alpha=0.25 focal.gamma=2.0") == 1  # the loss settings column
    assert "IoU background" in table and "FINISHED" in table
    header = next(line for line in table.splitlines() if line.startswith("| run"))
    # the final weights' val_miou leads; the best epoch's comes after it, labelled as selected on val
    assert header.index("val_miou (final weights)") < header.index("best_val_miou (selected on val)")
    assert header.split(" | ")[1] == "val_miou (final weights)"
    assert (tmp_path / "sweep" / "class_iou.png").is_file() and (tmp_path / "sweep" / "val_miou_curves.png").is_file()


@pytest.mark.slow
def test_evaluate_without_a_checkpoint_is_a_clear_error(tmp_path):
    result = _run("evaluate.py", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "give at least one of checkpoint=" in result.stderr
    assert "Traceback" not in result.stderr
