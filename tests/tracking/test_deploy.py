"""Shipping a model: the MLflow Model every run logs, the registry alias, serving, exports with
measured parity, and evaluate/predict on every kind of model source."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from animalseg.inference import prediction_geometry
from tests.helpers import ANIMALS, ROOT, quiet_env, tiny, train_command

MODEL_NAME = "tiny_shapes"
EVAL_SIZE = 48  # the tiny run predicts val at a long side of 48 px: every path must resize and pad
EXPORTS = [("saved_model", None), ("tflite", None), ("tflite", "float16"), ("tflite", "int8"), ("onnx", None)]


def test_prediction_geometry_is_the_same_for_ints_and_traced_tensors():
    sizes = [(h, w) for h in (1, 17, 32, 45, 333, 375, 500) for w in (1, 31, 64, 70, 499, 512)]

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)] * 2)
    def traced(height, width):
        return tf.stack(prediction_geometry(height, width, 256, 32))

    for height, width in sizes:
        expected = prediction_geometry(height, width, 256, 32)
        assert all(isinstance(v, int) for v in expected)
        assert tuple(traced(height, width).numpy()) == expected, (height, width)
    assert prediction_geometry(333, 512, 256, 32) == (166, 256, 192, 256)  # 166.5 rounds half to even
    assert prediction_geometry(45, 70, None, 16) == (45, 70, 48, 80)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict:
    """One tiny run, registered under MODEL_NAME, with system metrics sampled every second."""
    root = tmp_path_factory.mktemp("ship")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    command = train_command(
        root / "run",
        uri,
        *tiny("unet"),
        "trainer.epochs=2",
        f"data.eval_size={EVAL_SIZE}",
        "logger.log_model=true",
        f"logger.register_as={MODEL_NAME}",
        "logger.system_metrics=true",
    )
    env = quiet_env(PYTHONPATH=str(ROOT), MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = re.search(r"^MLflow:\s+run (\w+)", done.stdout, re.MULTILINE).group(1)
    return {
        "root": root,
        "uri": uri,
        "run_id": run_id,
        "run_dir": root / "run",
        "env": {**env, "MLFLOW_TRACKING_URI": uri},
    }


def val_images(shipped: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from animalseg.build import build_data

    config = OmegaConf.load(shipped["run_dir"] / "config.yaml")
    dataset = build_data(config.data).dataset
    pairs = [dataset.load("val", i) for i in range(len(dataset.ids("val")))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def saved_groups(checkpoint: Path) -> set[str]:
    """The top-level groups of a ``.keras`` file's weights (``optimizer`` when it was saved compiled)."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(checkpoint) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        return set(weights)


@pytest.mark.slow
def test_every_run_logs_its_final_weights_as_a_registered_model_with_its_datasets(shipped):
    import mlflow

    from animalseg.inference import Predictor
    from animalseg.trained import load_trained

    client = mlflow.MlflowClient(shipped["uri"])
    mlflow.set_tracking_uri(shipped["uri"])
    version = client.get_model_version_by_alias(MODEL_NAME, "newest")
    assert version.run_id == shipped["run_id"]
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@newest")
    assert loaded.metadata.metadata["class_names"][0] == "background"
    assert loaded.metadata.signature.params.to_dict()[0]["name"] == "probabilities"
    assert loaded.metadata.get_input_schema() is None  # arrays or encoded images: the pyfunc checks them
    assert loaded.metadata.metadata["inference"]["size"] == EVAL_SIZE
    assert loaded.metadata.saved_input_example_info is not None
    model_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{shipped['run_id']}/model"))
    (served,) = model_dir.rglob("*.keras")
    assert saved_groups(served) == {"layers", "vars"}  # weights only: no optimizer state to ship
    assert "optimizer" in saved_groups(shipped["run_dir"] / "checkpoints" / "last.keras")

    final = load_trained(str(shipped["run_dir"] / "checkpoints" / "last.keras"), None, None, shipped["root"])
    image = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    masks = loaded.predict(image)
    assert masks.shape == (2, 37, 53) and masks.dtype == np.uint8
    assert Predictor(final.model).settings.size == EVAL_SIZE  # the model carries how it predicts
    assert np.array_equal(masks[1], Predictor(final.model).predict(image[1:])[0][0])
    probabilities = loaded.predict(image, params={"probabilities": True})
    assert probabilities.shape == (2, 37, 53, 7)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)

    run = client.get_run(shipped["run_id"])
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation"}
    assert inputs["training"].name == "synthetic-train" and len(inputs["training"].digest) == 10
    assert any(key.startswith("system/") for key in run.data.metrics), sorted(run.data.metrics)

    # the logged model carries the final weights' scores, on the split they were scored on
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    (logged,) = [m for m in found if m.source_run_id == run.info.run_id]
    linked = {m.key: m for m in logged.metrics}
    assert linked["val_miou"].value == pytest.approx(run.data.metrics["val_miou"])
    assert linked["val_miou"].dataset_name == "synthetic-val" and "val_iou/background" in linked
    history = client.get_metric_history(run.info.run_id, "val_miou")
    assert [m.step for m in history] == [1, 2]  # linked without a second point at the last epoch
    assert "val mIoU" in version.description and "python train.py" in version.description
    assert (
        version.tags["val_miou"] == f"{run.data.metrics['val_miou']:.4f}" and version.tags["run_id"] == run.info.run_id
    )
    assert client.get_registered_model(MODEL_NAME).description


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "quantize"), EXPORTS, ids=lambda v: str(v))
def test_an_export_predicts_what_the_keras_model_predicts(shipped, fmt, quantize, tmp_path):
    from animalseg.build import build_data
    from animalseg.export import FORMATS, export_model
    from animalseg.inference import settings_of
    from animalseg.sources import ExportedSource, KerasSource
    from animalseg.trained import load_trained
    from animalseg.training.evaluation import Evaluator

    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "onnxruntime"}.get(fmt, "tensorflow"))
    trained = load_trained(str(shipped["run_dir"] / "checkpoints" / "last.keras"), None, None, tmp_path)
    settings = settings_of(trained.model)
    path = export_model(trained.model, settings, fmt, tmp_path / f"model{FORMATS[fmt][1]}", quantize)
    exported, keras_source = ExportedSource(path), KerasSource(trained, settings, "keras")
    assert exported.class_names == trained.class_names

    images = np.random.default_rng(1).integers(0, 256, (2, 41, 67, 3), dtype=np.uint8)
    masks, probabilities = exported.outputs(images)
    reference_masks, reference = keras_source.outputs(images)
    assert masks.shape == (2, 41, 67) and probabilities.shape == reference.shape
    exact = quantize is None
    assert np.abs(probabilities - reference).max() < (1e-4 if exact else 0.05)
    assert np.mean(masks == reference_masks) > (0.999 if exact else 0.97)

    data = build_data(OmegaConf.load(shipped["run_dir"] / "config.yaml").data)
    evaluator = Evaluator(data.dataset, "val", batch_size=4, num_examples=0)
    keras_miou = evaluator.evaluate(trained.model).scores["miou"]
    export_miou = evaluator.score(lambda batch: (exported.outputs(batch)[0], None)).scores["miou"]
    assert abs(export_miou - keras_miou) <= (0.005 if quantize != "int8" else 0.02)


def script_main(name: str):
    """The ``main(argv)`` of ``scripts/<name>.py``, run in-process (exit code returned, errors on stderr)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.slow
def test_export_and_evaluate_take_runs_exports_uris_and_ensembles(shipped, tmp_path, capsys, monkeypatch):
    import mlflow

    from animalseg.evaluate import evaluate
    from animalseg.scripting import compose_from_argv

    run_id = shipped["run_id"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shipped["uri"])
    common = [f"logger.tracking_uri={shipped['uri']}", f"paths.output_dir={tmp_path}"]
    onnx = tmp_path / "tiny.onnx"
    export = script_main("export")
    assert export([f"run_id={run_id}", "format=onnx", f"output={onnx}", *common]) == 0
    logged = {a.path for a in mlflow.MlflowClient(shipped["uri"]).list_artifacts(run_id, "exports")}
    assert onnx.is_file() and {"exports/tiny.onnx", "exports/tiny.onnx.json"} <= logged
    assert export([f"run_id={run_id}", "format=onnx", "quantize=int8", *common]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: quantize=int8: format=onnx offers none")

    def scores(*args: str) -> dict:
        evaluate(compose_from_argv([*args, *common], "evaluate"))
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the last line: JSON

    by_run = scores(f"run_id={run_id}")  # its best checkpoint, as export.py run_id= takes
    by_export = scores(f"checkpoint={onnx}", "data.dataset.image_size=32", "data.dataset.val_size=8")
    by_final = scores(f"checkpoint={shipped['run_dir'] / 'checkpoints' / 'last.keras'}")
    by_alias = scores(f"model_uri=models:/{MODEL_NAME}@newest")  # the final weights, as a pyfunc
    ensemble = scores(f"run_id=[{run_id}]", f"checkpoint=[{onnx}]", f"model_uri=runs:/{run_id}/model")
    assert by_run["split"] == "val" and set(by_run["iou"]) == set(by_final["iou"]) >= {"background", "disc"}
    assert abs(by_export["miou"] - by_run["miou"]) <= 0.005
    assert by_alias["miou"] == pytest.approx(by_final["miou"], abs=1e-6)
    assert len(ensemble["models"]) == 3 and 0.0 <= ensemble["miou"] <= 1.0
    assert all(s["seconds"] > 0 for s in (by_run, by_export, ensemble))  # the scoring's cost, printed


def photo(tmp_path: Path) -> Path:
    """A real photo as a JPEG file (what clients send): the first animals image when the dataset is
    here, else scikit-image's cat; small, so the array request's JSON stays small."""
    from PIL import Image

    candidates = sorted(ANIMALS.rglob("JPEGImages/*")) if ANIMALS.is_dir() else []
    if candidates:
        picture = Image.open(candidates[0]).convert("RGB")
    else:
        picture = Image.fromarray(pytest.importorskip("skimage.data").chelsea())
    path = tmp_path / "photo.jpg"
    picture.resize((150, 100)).save(path, quality=90)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_registered_model_serves_the_masks_predict_py_writes(shipped, tmp_path):
    from PIL import Image

    from animalseg.data.images import read_image
    from animalseg.predict import predict
    from animalseg.scripting import compose_from_argv

    image_path = photo(tmp_path)
    last = shipped["run_dir"] / "checkpoints" / "last.keras"
    predict(
        compose_from_argv(
            [
                f"checkpoint={last}",
                f"input={image_path}",
                f"output_dir={tmp_path / 'pred'}",
                f"paths.output_dir={tmp_path}",
            ],
            "predict",
        )
    )
    expected = np.array(Image.open(tmp_path / "pred" / f"{image_path.stem}_mask.png"))

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@newest",
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        # the server runs `uvicorn` from PATH: this interpreter's environment, as an activated venv has it
        env={**shipped["env"], "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the model server did not answer /ping within 180 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(1)
        body = json.dumps({"inputs": read_image(image_path)[None].tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            served = np.array(json.loads(reply.read())["predictions"], np.uint8)
        # the docs' client: the JPEG file itself, base64 in a table column, a PNG mask back
        encoded = base64.b64encode(image_path.read_bytes()).decode("ascii")
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[encoded]]}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            (row,) = json.loads(reply.read())["predictions"]
        from_bytes = np.array(Image.open(io.BytesIO(base64.b64decode(row["mask"]))))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)  # the server and the uvicorn it starts: one process group
        server.wait(timeout=30)
    assert served.shape == (1, *expected.shape)
    assert np.array_equal(served[0], expected)
    assert np.array_equal(from_bytes, expected)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["unet", "unetplusplus", "fpn", "deeplabv3plus"])
@pytest.mark.parametrize(("fmt", "quantize"), [("tflite", None), ("onnx", None)], ids=lambda v: str(v))
def test_an_encoder_unet_exports_with_the_same_masks(fmt, quantize, decoder, tmp_path):
    """The Lite0 model's upsampling (nearest, bilinear), ASPP's image pooling and the input
    normalisation survive the converters, with every decoder."""
    from hydra.utils import instantiate

    from animalseg.export import FORMATS, export_model
    from animalseg.inference import InferenceSettings
    from animalseg.sources import ExportedSource, KerasSource
    from animalseg.trained import TrainedModel
    from tests.helpers import compose_config

    pytest.importorskip({"tflite": "ai_edge_litert", "onnx": "onnxruntime"}[fmt])
    overrides = [*tiny("unet_efficientnet"), f"model.decoder={decoder}", "model.decoder_channels=16"]
    model = instantiate(compose_config(overrides).model, num_classes=3)
    trained = TrainedModel(model, tmp_path / "untrained.keras", None, ["a", "b", "c"], np.zeros((3, 3), np.uint8))
    path = export_model(model, InferenceSettings(size=80), fmt, tmp_path / f"lite0{FORMATS[fmt][1]}", quantize)
    images = np.random.default_rng(2).integers(0, 256, (1, 50, 90, 3), dtype=np.uint8)
    masks, probabilities = ExportedSource(path).outputs(images)
    reference_masks, reference = KerasSource(trained, InferenceSettings(size=80), "keras").outputs(images)
    assert np.abs(probabilities - reference).max() < 1e-4
    assert np.mean(masks == reference_masks) > 0.999


@pytest.mark.parametrize("alias", ["latest", "v3", "bad alias"])
def test_an_alias_the_registry_refuses_stops_the_run_before_training(alias, tmp_path):
    from animalseg.errors import ConfigError
    from animalseg.tracking.mlflow import MlflowTracker

    with pytest.raises(ConfigError, match=f"logger.register_alias={alias}"):
        MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", register_as="animals", register_alias=alias)


@pytest.mark.slow
def test_a_run_trained_with_antialiasing_ships_it_in_its_mlflow_model_and_its_export(tmp_path, monkeypatch, capsys):
    """``data.antialias`` is part of the model's input processing: its MLflow Model and a
    SavedModel export downscale as its evaluation did; the converters, which cannot, refuse."""
    import mlflow
    from hydra.utils import instantiate

    from animalseg.errors import ConfigError
    from animalseg.export import export_model
    from animalseg.inference import InferenceSettings
    from animalseg.inference.pyfunc import SegmentationPyfunc
    from animalseg.sources import ExportedSource, KerasSource
    from animalseg.tracking.model import load_logged_model, log_inference_model, signature
    from animalseg.trained import TrainedModel
    from tests.helpers import compose_config

    monkeypatch.chdir(tmp_path)
    names, colors = ["a", "b", "c"], np.zeros((3, 3), np.uint8)
    model = instantiate(compose_config(tiny("unet")).model, num_classes=3)
    older_checkpoint = tmp_path / "older.keras"
    model.save(older_checkpoint)  # saved before models carried their inference settings
    model.inference = InferenceSettings(size=32, antialias=True).to_config()
    checkpoint = tmp_path / "model.keras"
    model.save(checkpoint)
    trained = TrainedModel(model, checkpoint, None, names, colors)
    images = np.random.default_rng(3).integers(0, 256, (1, 90, 120, 3), dtype=np.uint8)  # downscaled to 32

    def keras_probabilities(antialias: bool) -> np.ndarray:
        return KerasSource(trained, InferenceSettings(size=32, antialias=antialias), "keras").outputs(images)[1]

    smooth = keras_probabilities(True)
    assert np.abs(smooth - keras_probabilities(False)).max() > 1e-3  # the setting changes these outputs

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("antialias", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_inference_model(checkpoint, names, colors, images[:, :8, :8])
        served = mlflow.pyfunc.load_model(info.model_uri).predict(images, params={"probabilities": True})
        with mlflow.start_run(experiment_id=experiment):  # a model logged before its config said it
            mlflow.log_dict({"data": {"antialias": True}}, "config/config.yaml")
            older = mlflow.pyfunc.log_model(
                name="model",
                python_model=SegmentationPyfunc(),
                artifacts={"checkpoint": str(older_checkpoint)},
                model_config={"predict_size": 32},
                signature=signature(),
                metadata={"class_names": names},
            )
        loaded, _ = load_logged_model(older.model_uri, mlflow.get_tracking_uri(), tmp_path / "download")
        served_older = loaded.predict(images, params={"probabilities": True})
    finally:
        mlflow.set_tracking_uri(previous)
    np.testing.assert_allclose(served, smooth, atol=1e-5)
    np.testing.assert_allclose(served_older, smooth, atol=1e-5)  # from its run's data.antialias

    path = export_model(model, InferenceSettings(size=32, antialias=True), "saved_model", tmp_path / "export")
    np.testing.assert_allclose(ExportedSource(path).outputs(images)[1], smooth, atol=1e-4)
    for fmt in ("tflite", "onnx"):
        with pytest.raises(ConfigError, match=f"format={fmt}: .*inference.antialias=true"):
            export_model(model, InferenceSettings(size=32, antialias=True), fmt, tmp_path / f"model.{fmt}")
    export = script_main("export")
    common = [f"checkpoint={older_checkpoint}", "predict_size=32", "log_to_mlflow=false"]
    capsys.readouterr()
    assert export([*common, "format=tflite", "antialias=true"]) == 2
    assert "error: format=tflite: antialias=true was given, and tflite has no" in capsys.readouterr().err
    assert export([*common, "antialias=true", f"output={tmp_path / 'by_script'}"]) == 0
    by_script = ExportedSource(tmp_path / "by_script")
    np.testing.assert_allclose(by_script.outputs(images)[1], smooth, atol=1e-4)


def test_an_output_without_the_formats_suffix_gets_it_and_another_formats_is_refused(tmp_path, capsys):
    """``output=`` as a user types it: a file format's suffix is added when missing (readers tell
    the format by it) and the metadata goes beside the file; another format's suffix is refused in
    one line before anything is written."""
    from hydra.utils import instantiate

    import animalseg.export as exporting
    from animalseg.errors import ConfigError
    from animalseg.sources import ExportedSource
    from tests.helpers import compose_config

    pytest.importorskip("onnxruntime")
    model = instantiate(compose_config(tiny("unet")).model, num_classes=3)
    checkpoint = tmp_path / "model.keras"
    model.save(checkpoint)
    export = script_main("export")
    common = [f"checkpoint={checkpoint}", "predict_size=32", "log_to_mlflow=false", "format=onnx"]
    capsys.readouterr()
    assert export([*common, f"output={tmp_path / 'exp_onnx'}"]) == 0
    assert f"→ {tmp_path / 'exp_onnx.onnx'}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp_onnx.onnx", "exp_onnx.onnx.json", "model.keras"]
    exported = ExportedSource(tmp_path / "exp_onnx.onnx")
    assert exported.outputs(np.zeros((1, 40, 50, 3), np.uint8))[0].shape == (1, 40, 50)
    assert json.loads((tmp_path / "exp_onnx.onnx.json").read_text())["num_classes"] == 3

    assert export([*common, f"output={tmp_path / 'other.tflite'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: output={tmp_path / 'other.tflite'}: format=onnx writes a .onnx file, not a .tflite file; "
        f"give output={tmp_path / 'other.onnx'} (or format=tflite)"
    ]
    assert export([*common, f"output={tmp_path / 'exp_onnx'}"]) == 2  # an export is never overwritten
    assert "exp_onnx.onnx: already exists" in capsys.readouterr().err
    assert exporting.export_path("tflite", Path("m")) == Path("m.tflite")
    assert exporting.export_path("tflite", Path("m.v2")) == Path("m.v2.tflite")
    assert exporting.export_path("onnx", Path("m.onnx")) == Path("m.onnx")
    assert exporting.export_path("saved_model", Path("m.v2")) == Path("m.v2")
    with pytest.raises(ConfigError, match=r"format=saved_model writes a folder, not a \.onnx file; give output=m "):
        exporting.export_path("saved_model", Path("m.onnx"))


@pytest.mark.parametrize("fmt", ["onnx", "saved_model"])
def test_an_export_that_fails_midway_leaves_nothing_behind(fmt, tmp_path, monkeypatch):
    import keras
    from hydra.utils import instantiate

    import animalseg.export as exporting
    from animalseg.inference import InferenceSettings
    from tests.helpers import compose_config

    def onnx_fails(serve, output: Path) -> None:
        output.write_bytes(b"half an onnx file")
        raise RuntimeError("the converter crashed")

    class ArchiveFails:
        def track(self, model) -> None:
            pass

        def add_endpoint(self, name, function) -> None:
            pass

        def write_out(self, folder: str, **kwargs) -> None:
            Path(folder).mkdir()
            (Path(folder) / "saved_model.pb").write_bytes(b"half a SavedModel")
            raise RuntimeError("the converter crashed")

    monkeypatch.setattr(exporting, "export_onnx", onnx_fails)
    monkeypatch.setattr(keras.export, "ExportArchive", ArchiveFails)
    model = instantiate(compose_config(tiny("unet")).model, num_classes=3)
    with pytest.raises(RuntimeError, match="the converter crashed"):
        exporting.export_model(
            model, InferenceSettings(size=32), fmt, tmp_path / "exports" / f"half{exporting.FORMATS[fmt][1]}"
        )
    assert list((tmp_path / "exports").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["saved_model", "onnx"])
def test_an_export_carries_the_models_test_time_augmentation(fmt, tmp_path):
    """Flips and scales saved in the model are traced into the export's graph: its probabilities
    are the Predictor's mean over the same views."""
    from hydra.utils import instantiate

    from animalseg.export import FORMATS, export_model
    from animalseg.inference import InferenceSettings, TestTimeAugmentation
    from animalseg.sources import ExportedSource, KerasSource
    from animalseg.trained import TrainedModel
    from tests.helpers import compose_config

    pytest.importorskip({"onnx": "onnxruntime"}.get(fmt, "tensorflow"))
    model = instantiate(compose_config(tiny("unet")).model, num_classes=3)
    settings = InferenceSettings(size=40, tta=TestTimeAugmentation(flip=True, scales=(0.75, 1.0)))
    model.inference = settings.to_config()
    trained = TrainedModel(model, tmp_path / "m.keras", None, ["a", "b", "c"], np.zeros((3, 3), np.uint8))
    path = export_model(model, settings, fmt, tmp_path / f"tta{FORMATS[fmt][1]}")
    images = np.random.default_rng(4).integers(0, 256, (2, 45, 70, 3), dtype=np.uint8)
    masks, probabilities = ExportedSource(path).outputs(images)
    reference_masks, reference = KerasSource(trained, settings, "keras").outputs(images)
    plain = KerasSource(trained, InferenceSettings(size=40), "keras").outputs(images)[1]
    assert np.abs(reference - plain).max() > 1e-3  # the views change the outputs
    assert np.abs(probabilities - reference).max() < 1e-4
    assert np.mean(masks == reference_masks) > 0.999
