"""How a trained model predicts, owned in one place: an RGB uint8 image of any size in, class
probabilities and a mask at that size out (``Predictor``), with the settings saved in the model
itself (``InferenceSettings``) so a checkpoint, an export, the MLflow Model and an ensemble all
predict alike without the training config.

Sits above ``models`` and below ``training``: per-epoch validation uses it as every caller does.
"""

from animalseg.inference.geometry import prediction_geometry
from animalseg.inference.predictor import Predictor
from animalseg.inference.settings import NO_TTA, InferenceSettings, TestTimeAugmentation, settings_of, tta_from_config

__all__ = [
    "NO_TTA",
    "InferenceSettings",
    "Predictor",
    "TestTimeAugmentation",
    "prediction_geometry",
    "settings_of",
    "tta_from_config",
]
