"""A trained model as the commands load it: its checkpoint, training config, classes and the
settings it predicts with (its own, with the command's explicit overrides on top)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from animalseg.config import run_data_value
from animalseg.data.images import voc_colormap
from animalseg.errors import ConfigError
from animalseg.inference import NO_TTA, InferenceSettings, TestTimeAugmentation, settings_of, tta_from_config
from animalseg.models import SegmentationModel
from animalseg.training.callbacks import BEST_CHECKPOINT, LAST_CHECKPOINT

CLASSES_FILE = "classes.json"
SHORTHANDS = {"predict_size": "size", "antialias": "antialias"}  # command key -> inference setting


@dataclass
class TrainedModel:
    """A loaded checkpoint and what training knew about it (if it can be found)."""

    model: SegmentationModel
    checkpoint: Path
    run_config: DictConfig | None
    class_names: list[str]
    colors: np.ndarray
    run_id: str | None = None


def write_classes(path: Path, class_names: list[str], colors: np.ndarray, ignore_index: int) -> Path:
    """The dataset's classes and colours beside the checkpoints, for prediction without data."""
    path.write_text(
        json.dumps(
            {"class_names": class_names, "colors": np.asarray(colors).tolist(), "ignore_index": ignore_index}, indent=1
        )
    )
    return path


def load_trained(checkpoint: str | None, run_id: str | None, tracking_uri: str | None, workdir: Path) -> TrainedModel:
    """Load ``checkpoint`` (a ``.keras`` path) or the final weights of MLflow run ``run_id``
    (``checkpoints/last.keras``; ``best.keras`` for runs logged before the final weights were)."""
    if (checkpoint is None) == (run_id is None):
        raise ConfigError("give exactly one of checkpoint=/path/to/last.keras or run_id=<MLflow run id>")
    if run_id is not None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from animalseg.tracking.mlflow import run_artifact

        client = MlflowClient(tracking_uri)
        try:
            logged = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
            name = next(
                (f"checkpoints/{n}" for n in (LAST_CHECKPOINT, BEST_CHECKPOINT) if f"checkpoints/{n}" in logged), None
            )
            if name is None:
                raise ConfigError(f"run_id={run_id}: the run logged no checkpoint (checkpoints/last.keras)")
            run_dir_config = run_artifact(client, run_id, "config/config.yaml", workdir)
            path = run_artifact(client, run_id, name, workdir)
            if f"checkpoints/{CLASSES_FILE}" in logged:
                run_artifact(client, run_id, f"checkpoints/{CLASSES_FILE}", workdir)
        except MlflowException as error:
            raise ConfigError(f"run_id={run_id}: cannot fetch its checkpoint from {tracking_uri} ({error})") from None
    else:
        path = Path(checkpoint).expanduser()
        run_dir_config = path.parent.parent / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"checkpoint={path}: file not found")
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, OSError) as error:
        raise ConfigError(f"checkpoint={path}: not a loadable Keras model ({error})") from None
    if not isinstance(model, SegmentationModel):
        raise ConfigError(
            f"checkpoint={path}: a {type(model).__name__} from before models carried their output stride "
            "and classes; retrain it with this version"
        )
    run_config = OmegaConf.load(run_dir_config) if run_dir_config.is_file() else None
    names, colors = model_classes(model, path.parent / CLASSES_FILE)
    return TrainedModel(model, path, run_config, names, colors, run_id)


def model_classes(model: SegmentationModel, classes_file: Path) -> tuple[list[str], np.ndarray]:
    """Class names and colours: the model's own, else ``classes.json`` beside the checkpoint, else
    numbered names and the VOC palette."""
    names, colors = model.class_names, model.class_colors
    if (names is None or colors is None) and classes_file.is_file():
        classes = json.loads(classes_file.read_text())
        names, colors = names or classes["class_names"], colors or classes["colors"]
    names = names or [f"class_{i}" for i in range(model.num_classes)]
    return names, voc_colormap(model.num_classes) if colors is None else np.array(colors, np.uint8)


def saved_settings(model: SegmentationModel, run_config: DictConfig | None) -> InferenceSettings:
    """How ``model`` predicts: the settings saved in it; for a model saved before models carried
    them, the ones its run validated with (``data.eval_size``, ``data.antialias``, ``tta``)."""
    own = settings_of(model)
    if own is not None:
        return own
    tta = run_config.get("tta") if run_config is not None else None
    return InferenceSettings(
        size=run_data_value(run_config, "eval_size"),
        antialias=bool(run_data_value(run_config, "antialias", False)),
        tta=NO_TTA if tta is None else TestTimeAugmentation(flip=tta.flip, scales=tuple(tta.scales)),
    )


def command_settings(cfg: DictConfig, saved: InferenceSettings) -> tuple[InferenceSettings, list[str]]:
    """``saved`` with the command's explicit overrides on top (``inference.<key>`` other than
    ``auto``, ``predict_size``, ``antialias``, ``tta=``, ``flip_tta=true``), and those overrides
    as ``key=value``."""
    changes = {k: v for k, v in (cfg.get("inference") or {}).items() if v != "auto"}
    for key, setting in SHORTHANDS.items():  # predict.py's and export.py's own keys for the same settings
        value = cfg.get(key, "auto")
        if value == "auto":
            continue
        if setting in changes and changes[setting] != value:
            raise ConfigError(
                f"{key}={value} and inference.{setting}={changes[setting]}: give one (inference.{setting})"
            )
        changes[setting] = value
    if cfg.get("tta") is not None:
        changes["tta"] = tta_from_config(OmegaConf.to_container(cfg.tta, resolve=True))
    elif cfg.get("flip_tta"):
        changes["tta"] = TestTimeAugmentation(flip=True)
    unknown = sorted(set(changes) - set(saved.to_config()))
    if unknown:
        raise ConfigError(f"inference.{unknown[0]}: not a setting; the settings are {', '.join(saved.to_config())}")
    settings = saved.replace(**changes)
    said = [f"inference.{k}={v}" if k != "tta" else f"tta: {v.describe()}" for k, v in changes.items()]
    return settings, said


def finite(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
