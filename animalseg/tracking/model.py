"""The run's MLflow Model: a pyfunc that takes RGB photos and gives class masks, with its code.

A caller needs nothing of animalseg's config: the resize to the size the run evaluated at, the
padding to the model's stride, the crop back and the argmax all happen inside ``predict``, through
the same functions evaluation uses. ``runs:/<run id>/model`` or ``models:/NAME@ALIAS`` load it;
``mlflow models serve`` serves it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec
from omegaconf import DictConfig, OmegaConf

import animalseg
from animalseg.compat.mlflow import PythonModelWithSignature
from animalseg.config import run_data_value
from animalseg.errors import ConfigError
from animalseg.tracking.mlflow import run_artifact

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # runs:/<run id>/model
# What the pyfunc imports (see its load_context/predict); pinned to this environment's versions,
# given explicitly because MLflow's own inference of requirements imports and times everything.
REQUIREMENTS = ("mlflow", "tensorflow", "keras", "numpy")


class SegmentationPyfunc(PythonModelWithSignature):
    """(N, H, W, 3) uint8 RGB of any H, W → (N, H, W) uint8 class indices at the input size;
    ``params={"probabilities": True}`` → (N, H, W, C) float32 softmax probabilities instead."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import keras

        import animalseg.models  # noqa: F401  (registers the model classes)
        from animalseg.training.distribution import batch_predictor

        self.model = keras.models.load_model(context.artifacts["checkpoint"], compile=False)
        self.predict_size = context.model_config.get("predict_size")
        self.antialias: bool | None = context.model_config.get("antialias")  # None: logged before the key
        self.forward = batch_predictor(self.model)

    # model_input is left unannotated: MLflow reads a type hint there as an input schema of its own
    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input, params: dict[str, Any] | None = None):
        logits = self.logits(np.asarray(model_input))
        if (params or {}).get("probabilities"):
            import keras

            return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
        return np.argmax(logits, axis=-1).astype(np.uint8)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Semantic logits at the input size, through evaluation's own geometry."""
        from animalseg.training.evaluation import predict_native, prediction_geometry

        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected a batch of RGB images (N, H, W, 3), got shape {images.shape}")
        height, width = images.shape[1:3]
        geometry = prediction_geometry(height, width, self.predict_size, self.model.output_stride)
        outputs = predict_native(
            self.forward, images.astype(np.float32), geometry, (height, width), antialias=bool(self.antialias)
        )
        return outputs[self.model.semantic_head]


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
    if not hasattr(python_model, "logits") or not (loaded.metadata.metadata or {}).get("class_names"):
        raise ConfigError(f"model_uri={uri}: not an animalseg model ({type(python_model).__name__})")
    run_config = None
    run_id = loaded.metadata.run_id
    if run_id:
        try:
            run_config = OmegaConf.load(run_artifact(mlflow.MlflowClient(), run_id, "config/config.yaml", workdir))
        except (MlflowException, OSError):
            run_config = None  # a model logged outside a training run: its own metadata is enough
    if python_model.antialias is None:
        python_model.antialias = bool(run_data_value(run_config, "antialias", False))
    return loaded, run_config


def signature() -> ModelSignature:
    """Any batch of any-sized RGB uint8 images in, masks out; ``probabilities`` as a param."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]),
        params=ParamSchema([ParamSpec("probabilities", "boolean", False)]),
    )


def requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


def log_inference_model(
    checkpoint: Path,
    predict_size: int | None,
    class_names: list[str],
    class_colors: np.ndarray,
    input_example: np.ndarray,
    register_as: str | None = None,
    register_alias: str = "newest",
    antialias: bool = False,
) -> mlflow.models.model.ModelInfo:
    """Log ``checkpoint``'s weights (without its optimizer state) as the active run's MLflow Model
    ``model`` (registered as ``register_as`` with ``register_alias`` pointing at the new version
    when given); it predicts at ``predict_size``, antialiasing the downscale as the run did."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=SegmentationPyfunc(),
            artifacts={"checkpoint": str(inference_copy(checkpoint, Path(scratch)))},
            model_config={"predict_size": predict_size, "antialias": antialias},
            code_paths=[str(Path(animalseg.__file__).parent)],
            pip_requirements=requirements(),
            signature=signature(),
            input_example=input_example,
            metadata={
                "class_names": list(class_names),
                "class_colors": np.asarray(class_colors).tolist(),
                "predict_size": predict_size,
                "antialias": antialias,
                "input": "RGB uint8 (N, H, W, 3), any H and W",
                "output": "uint8 class indices (N, H, W); params probabilities=true: float32 (N, H, W, C)",
            },
            registered_model_name=register_as,
        )
    if register_as is not None:
        mlflow.MlflowClient().set_registered_model_alias(register_as, register_alias, info.registered_model_version)
        log.info("Registered %s version %s as @%s", register_as, info.registered_model_version, register_alias)
    uri = f"runs:/{mlflow.active_run().info.run_id}/{MODEL_NAME}"
    log.info("Logged the MLflow Model %s in %.1f s", uri, time.perf_counter() - started)
    return info


def inference_copy(checkpoint: Path, directory: Path) -> Path:
    """``checkpoint`` saved again without its optimizer: what serving needs, about a third of the
    size with Adam (whose two slots per weight a training checkpoint keeps for resuming)."""
    import keras

    import animalseg.models  # noqa: F401  (registers the model classes)

    path = directory / checkpoint.name
    keras.models.load_model(checkpoint, compile=False).save(path)
    return path
