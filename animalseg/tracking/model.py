"""The run's MLflow Model: a pyfunc that takes RGB photos and gives class masks, with its code.

A caller needs nothing of animalseg's config: the pyfunc (``animalseg.inference.pyfunc``) runs
the model's own ``Predictor`` with the settings saved in the model, as every evaluation does.
``runs:/<run id>/model`` or ``models:/NAME@ALIAS`` load it; ``mlflow models serve`` serves it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec
from omegaconf import DictConfig, OmegaConf

import animalseg
from animalseg.config import run_data_value
from animalseg.errors import ConfigError
from animalseg.inference import InferenceSettings, settings_of
from animalseg.inference.pyfunc import SegmentationPyfunc
from animalseg.tracking.mlflow import run_artifact

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # runs:/<run id>/model
# What the pyfunc imports (see its load_context/predict); pinned to this environment's versions,
# given explicitly because MLflow's own inference of requirements imports and times everything.
REQUIREMENTS = ("mlflow", "tensorflow", "keras", "numpy")


def load_logged_model(
    uri: str, tracking_uri: str, workdir: Path
) -> tuple[mlflow.pyfunc.PyFuncModel, DictConfig | None]:
    """The MLflow Model at ``uri`` (one every run logs) and its training run's config, if any.
    A model logged before its config said whether it antialiases takes its run's ``data.antialias``."""
    mlflow.set_tracking_uri(tracking_uri)
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as error:
        raise ConfigError(f"model_uri={uri}: cannot load it from {tracking_uri} ({error})") from None
    python_model = loaded.unwrap_python_model()
    if not hasattr(python_model, "predictor") or not (loaded.metadata.metadata or {}).get("class_names"):
        raise ConfigError(f"model_uri={uri}: not an animalseg model ({type(python_model).__name__})")
    run_config = None
    run_id = loaded.metadata.run_id
    if run_id:
        try:
            run_config = OmegaConf.load(run_artifact(mlflow.MlflowClient(), run_id, "config/config.yaml", workdir))
        except (MlflowException, OSError):
            run_config = None  # a model logged outside a training run: its own metadata is enough
    if not python_model.settings_logged:
        antialias = bool(run_data_value(run_config, "antialias", False))
        python_model.predictor.settings = python_model.predictor.settings.replace(antialias=antialias)
    return loaded, run_config


def signature() -> ModelSignature:
    """The params only: the pyfunc takes an array of images or a table of encoded images (see
    ``SegmentationPyfunc``), which no one MLflow input schema describes, and checks its input
    itself with a message the server returns."""
    return ModelSignature(
        params=ParamSchema([ParamSpec("probabilities", "boolean", False), ParamSpec("color", "boolean", False)]),
    )


def requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


def log_inference_model(
    checkpoint: Path,
    class_names: list[str],
    class_colors: np.ndarray,
    input_example: np.ndarray,
    register_as: str | None = None,
    register_alias: str = "newest",
) -> mlflow.models.model.ModelInfo:
    """Log ``checkpoint``'s weights (without its optimizer state) as the active run's MLflow Model
    ``model`` (registered as ``register_as`` with ``register_alias`` pointing at the new version
    when given); it predicts as the settings saved in the checkpoint say."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        copy, settings = inference_copy(checkpoint, Path(scratch))
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=SegmentationPyfunc(),
            artifacts={"checkpoint": str(copy)},
            code_paths=[str(Path(animalseg.__file__).parent)],
            pip_requirements=requirements(),
            signature=signature(),
            input_example=input_example,
            metadata={
                "class_names": list(class_names),
                "class_colors": np.asarray(class_colors).tolist(),
                "inference": settings.to_config(),
                "input": "RGB uint8 (N, H, W, 3), any H and W; or a table with an 'image' column of base64 image files",
                "output": "uint8 class indices (N, H, W); params probabilities=true: float32 (N, H, W, C); "
                "for a table: 'mask' (base64 PNG of the class indices), with params color=true also 'color'",
            },
            registered_model_name=register_as,
        )
    if register_as is not None:
        mlflow.MlflowClient().set_registered_model_alias(register_as, register_alias, info.registered_model_version)
        log.info("Registered %s version %s as @%s", register_as, info.registered_model_version, register_alias)
    uri = f"runs:/{mlflow.active_run().info.run_id}/{MODEL_NAME}"
    log.info("Logged the MLflow Model %s in %.1f s", uri, time.perf_counter() - started)
    return info


def inference_copy(checkpoint: Path, directory: Path) -> tuple[Path, InferenceSettings]:
    """``checkpoint`` saved again without its optimizer (what serving needs, about a third of the
    size with Adam, whose two slots per weight a training checkpoint keeps for resuming), and the
    settings it predicts with."""
    import keras

    import animalseg.models  # noqa: F401  (registers the model classes)

    path = directory / checkpoint.name
    model = keras.models.load_model(checkpoint, compile=False)
    model.save(path)
    return path, settings_of(model) or InferenceSettings()
