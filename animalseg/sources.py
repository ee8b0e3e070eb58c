"""Where predictions come from: a run, a ``.keras`` checkpoint, an exported model or an MLflow
model URI, behind one interface so evaluation, prediction and ensembles treat them alike."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from animalseg.data.images import voc_colormap
from animalseg.errors import ConfigError
from animalseg.export import SIGNATURE, read_metadata
from animalseg.inference import InferenceSettings, Predictor
from animalseg.inference.predictor import cleaned
from animalseg.tracking.model import load_logged_model
from animalseg.trained import TrainedModel, command_settings, load_trained, saved_settings
from animalseg.training.distribution import batch_predictor

Outputs = tuple[np.ndarray, np.ndarray]  # masks (N, H, W) uint8, probabilities (N, H, W, C) float32


class Source:
    """One model: ``outputs(images)`` for RGB uint8 (N, H, W, 3) → masks and probabilities at the
    input size. ``trained`` is set for Keras checkpoints; ``settings`` for the models animalseg
    predicts with (Keras checkpoints and MLflow Models; an export's graph has its own)."""

    settings: InferenceSettings | None = None

    def __init__(
        self,
        label: str,
        class_names: list[str],
        colors: np.ndarray,
        run_id: str | None = None,
        run_config: DictConfig | None = None,
        trained: TrainedModel | None = None,
    ):
        self.label, self.class_names, self.colors = label, class_names, colors
        self.run_id, self.run_config, self.trained = run_id, run_config, trained

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def outputs(self, images: np.ndarray) -> Outputs:
        raise NotImplementedError


class KerasSource(Source):
    """A Keras model through its ``Predictor``, with ``settings`` (its own, or the command's)."""

    def __init__(self, trained: TrainedModel, settings: InferenceSettings, label: str):
        super().__init__(label, trained.class_names, trained.colors, trained.run_id, trained.run_config, trained)
        self.predictor = Predictor(trained.model, settings, forward=batch_predictor(trained.model))

    @property
    def settings(self) -> InferenceSettings:
        return self.predictor.settings

    def outputs(self, images: np.ndarray) -> Outputs:
        return self.predictor.predict(images)


class ExportedSource(Source):
    """A file or folder ``scripts/export.py`` wrote (SavedModel, ``.tflite``, ``.onnx``)."""

    def __init__(self, path: Path):
        info = read_metadata(path)
        self.path = path
        self.run_call = self._runner(path)
        num_classes = info.get("num_classes") or self.run_call(np.zeros((1, 32, 32, 3), np.uint8))[1].shape[-1]
        names = info.get("class_names") or [f"class_{i}" for i in range(num_classes)]
        colors = np.array(info["class_colors"], np.uint8) if info.get("class_colors") else voc_colormap(num_classes)
        super().__init__(str(path), names, colors, info.get("run_id"))

    def outputs(self, images: np.ndarray) -> Outputs:
        return self.run_call(images)

    @staticmethod
    def _runner(path: Path) -> Callable[[np.ndarray], Outputs]:
        if path.is_dir() and (path / "saved_model.pb").is_file():
            import tensorflow as tf

            signature = tf.saved_model.load(str(path)).signatures[SIGNATURE]

            def saved_model(images: np.ndarray) -> Outputs:
                out = signature(images=tf.constant(images))
                return out["masks"].numpy(), out["probabilities"].numpy()

            return saved_model
        if path.suffix == ".tflite":
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                raise ConfigError(f"checkpoint={path}: needs LiteRT (pip install 'animalseg[export]')") from None
            runner = Interpreter(model_path=str(path), num_threads=len(os.sched_getaffinity(0)))
            signature = runner.get_signature_runner(SIGNATURE)

            def tflite(images: np.ndarray) -> Outputs:
                out = signature(images=np.ascontiguousarray(images, np.uint8))
                return out["masks"], out["probabilities"]

            return tflite
        if path.suffix == ".onnx":
            try:
                import onnxruntime
            except ImportError:
                raise ConfigError(f"checkpoint={path}: needs onnxruntime (pip install 'animalseg[export]')") from None
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only: tf2onnx's nearest resize draws a deprecation warning per node
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

            def onnx(images: np.ndarray) -> Outputs:
                masks, probabilities = session.run(["masks", "probabilities"], {"images": images.astype(np.uint8)})
                return masks, probabilities

            return onnx
        raise ConfigError(f"checkpoint={path}: not a .keras file, a SavedModel folder, a .tflite or an .onnx file")


class MlflowModelSource(Source):
    """An MLflow Model (``models:/NAME@ALIAS``, ``runs:/<run id>/model``): the pyfunc every run
    logs, predicting through its own ``Predictor`` with ``settings`` (its own, or the command's)."""

    def __init__(self, uri: str, tracking_uri: str, workdir: Path, settings: Callable[..., InferenceSettings]):
        self.pyfunc, run_config = load_logged_model(uri, tracking_uri, workdir)
        meta = self.pyfunc.metadata
        info = meta.metadata
        names = info["class_names"]
        colors = np.array(info["class_colors"], np.uint8) if info.get("class_colors") else voc_colormap(len(names))
        super().__init__(uri, names, colors, meta.run_id, run_config)
        served = self.pyfunc.unwrap_python_model().predictor
        self.predictor = Predictor(served.model, settings(served.settings))

    @property
    def settings(self) -> InferenceSettings:
        return self.predictor.settings

    def outputs(self, images: np.ndarray) -> Outputs:
        return self.predictor.predict(images)


def listed(value: str | Sequence[str] | None) -> list[str]:
    """A config value that is one item or a list (``run_id=a`` or ``run_id=[a,b]``)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple, ListConfig)) else [str(value)]


def load_sources(cfg: DictConfig) -> tuple[list[Source], list[str]]:
    """Every model ``run_id=``, ``checkpoint=`` and ``model_uri=`` name (each one or a list), in
    that order, each predicting with its own settings and the command's explicit overrides; and
    those overrides (``key=value``, see ``command_settings``), which exports cannot take.
    A run's files are read where they are, or fetched once into ``<paths.output_dir>/cache/runs``:
    never copied into the command's output folder."""
    tracking_uri = cfg.logger.tracking_uri
    workdir = Path(cfg.paths.output_dir) / "cache" / "runs"
    overrides: list[str] = []

    def settings(saved: InferenceSettings) -> InferenceSettings:
        changed, overrides[:] = command_settings(cfg, saved)
        return changed

    def keras(trained: TrainedModel, label: str) -> KerasSource:
        return KerasSource(trained, settings(saved_settings(trained.model, trained.run_config)), label)

    sources: list[Source] = []
    for run_id in listed(cfg.run_id):
        trained = load_trained(None, run_id, tracking_uri, workdir)
        sources.append(
            KerasSource(trained, settings(saved_settings(trained.model, trained.run_config)), f"run {run_id}")
        )
    for checkpoint in listed(cfg.checkpoint):
        path = Path(checkpoint).expanduser()
        if path.suffix == ".keras" or not path.exists():
            trained = load_trained(str(path), None, tracking_uri, workdir)
            sources.append(keras(trained, str(path)))
        else:
            sources.append(ExportedSource(path))
    for uri in listed(cfg.get("model_uri")):
        sources.append(MlflowModelSource(uri, tracking_uri, workdir, settings))
    if not sources:
        raise ConfigError("give at least one of checkpoint=<.keras or export>, run_id=<MLflow run> or model_uri=<URI>")
    if not overrides:  # only exports: the command's overrides are read here
        overrides = command_settings(cfg, InferenceSettings())[1]
    exports = [s.label for s in sources if s.settings is None]
    if overrides and exports:
        raise ConfigError(
            f"{overrides[0]}: an export predicts as it was exported ({exports[0]}); export it again with that "
            "setting, or drop it"
        )
    classes = {len(s.class_names) for s in sources}
    if len(classes) > 1:
        raise ConfigError(
            "an ensemble needs models of the same classes: "
            + "; ".join(f"{s.label} has {s.num_classes}" for s in sources)
        )
    cleanups = {
        (s.settings.crf_iterations, s.settings.fill_holes, s.settings.min_area)
        for s in sources
        if s.settings is not None
    }
    if len(sources) > 1 and len(cleanups) > 1:
        raise ConfigError(
            "inference.crf_iterations/fill_holes/min_area: an ensemble post-processes its averaged probabilities "
            "once and its models differ; give them on the command line for all"
        )
    return sources, overrides


def ensemble_outputs(sources: Sequence[Source], images: np.ndarray) -> Outputs:
    """One model's own outputs; several models' mean probabilities, their argmax post-processed as
    the models' settings say (``load_sources`` made sure they agree)."""
    if len(sources) == 1:
        return sources[0].outputs(images)
    probabilities = np.mean([source.outputs(images)[1] for source in sources], axis=0)
    masks = np.argmax(probabilities, axis=-1).astype(np.uint8)
    settings = next((s.settings for s in sources if s.settings is not None), None)
    if settings is not None and settings.postprocesses:
        masks, probabilities = cleaned(probabilities, images, settings)
    return masks, probabilities
