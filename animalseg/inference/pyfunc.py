"""The MLflow Model's Python class: RGB photos in, class masks out, through the model's own
``Predictor``. What it imports at load time is this package, ``animalseg.models`` and
``animalseg.compat``: the serving side of a run, nothing of training."""

from __future__ import annotations

import base64
import io
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from animalseg.compat.mlflow import PythonModelWithSignature
from animalseg.inference.predictor import Predictor
from animalseg.inference.settings import InferenceSettings, settings_of

IMAGE_COLUMN = "image"  # encoded images (PNG, JPEG, ...) as bytes or base64 text


class SegmentationPyfunc(PythonModelWithSignature):
    """Two kinds of input, as a server's JSON carries them:

    - an array (N, H, W, 3) uint8 RGB of any H, W (``{"inputs": [...]}``) → (N, H, W) uint8 class
      indices at the input size; ``params={"probabilities": True}`` → (N, H, W, C) float32
      softmax probabilities instead;
    - a table with an ``image`` column of encoded images, base64 text or bytes, each of its own
      size (``{"dataframe_split": {"columns": ["image"], "data": [["<base64 JPEG>"]]}}``) → a
      table with ``mask``, each a base64 PNG of the class indices at the image's size, and with
      ``params={"color": True}`` also ``color``, the mask in the class colours.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import keras

        import animalseg.models  # noqa: F401  (registers the model classes)

        model = keras.models.load_model(context.artifacts["checkpoint"], compile=False)
        config = context.model_config or {}
        # a model logged before models carried their settings: the size and antialiasing logged beside it
        self.settings_logged = settings_of(model) is not None or "antialias" in config
        settings = settings_of(model) or InferenceSettings(
            size=config.get("predict_size"), antialias=bool(config.get("antialias"))
        )
        self.predictor = Predictor(model, settings)

    @property
    def model(self):
        return self.predictor.model

    # model_input is left unannotated: MLflow reads a type hint there as an input schema of its own
    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input, params: dict[str, Any] | None = None):
        params = params or {}
        encoded = _encoded_column(model_input)
        if encoded is not None:
            return self.predict_encoded(encoded, bool(params.get("color")), bool(params.get("probabilities")))
        images = np.asarray(model_input)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise _bad_input(
                f"expected a batch of RGB images (N, H, W, 3) or a table with an '{IMAGE_COLUMN}' column of "
                f"encoded images, got an array of shape {images.shape}"
            )
        masks, probabilities = self.predictor.predict(np.clip(images, 0, 255).astype(np.uint8))
        return probabilities if params.get("probabilities") else masks

    def predict_encoded(self, encoded: list, color: bool, probabilities: bool):
        """A table of base64 PNG masks (and colour masks), one row per encoded image."""
        import pandas as pd
        from PIL import Image

        if probabilities:
            raise _bad_input("probabilities=true takes an array of images; encoded images return masks")
        colors = self.model.class_colors
        if color and colors is None:
            raise _bad_input("color=true: this model carries no class colours")
        rows = []
        for index, item in enumerate(encoded):
            try:
                data = item if isinstance(item, bytes) else base64.b64decode(str(item), validate=True)
                image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            except (ValueError, OSError) as error:
                raise _bad_input(f"{IMAGE_COLUMN} row {index}: not a base64 image file ({error})") from None
            mask = self.predictor.predict(image[None])[0][0]
            row = {"mask": _png(mask)}
            if color:
                row["color"] = _png(np.asarray(colors, np.uint8)[mask])
            rows.append(row)
        return pd.DataFrame(rows, columns=["mask", "color"] if color else ["mask"])


def _encoded_column(model_input) -> list | None:
    """The encoded images of a table input (a DataFrame, or the dict a server makes of
    ``{"inputs": {"image": [...]}}``), else None."""
    columns = getattr(model_input, "columns", None)
    if columns is not None:
        if IMAGE_COLUMN not in columns:
            raise _bad_input(f"a table input needs an '{IMAGE_COLUMN}' column of encoded images, got {list(columns)}")
        return list(model_input[IMAGE_COLUMN])
    if isinstance(model_input, dict):
        if IMAGE_COLUMN not in model_input:
            raise _bad_input(f"a named input needs '{IMAGE_COLUMN}' (encoded images), got {sorted(model_input)}")
        return list(np.atleast_1d(model_input[IMAGE_COLUMN]))
    return None


def _png(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bad_input(message: str) -> MlflowException:
    """An error the scoring server answers with 400 and this message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)
