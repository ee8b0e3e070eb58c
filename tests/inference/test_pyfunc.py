"""The MLflow Model's class takes what a client sends: an array of images, or encoded image files
(base64 text in a table column, as a JSON request carries them) answered with PNG masks."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from animalseg.inference import InferenceSettings, Predictor
from animalseg.inference.pyfunc import SegmentationPyfunc
from animalseg.models.unet import UNet

COLORS = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


@pytest.fixture(scope="module")
def pyfunc():
    model = UNet(num_classes=3, base_filters=4, depth=2, class_names=["bg", "a", "b"], class_colors=COLORS)
    served = SegmentationPyfunc()
    served.predictor = Predictor(model, InferenceSettings(size=32))
    return served


def encoded(image: np.ndarray, fmt: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decoded(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_encoded_images_of_any_size_give_png_masks_at_their_size(pyfunc):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((37, 53, 3), (20, 70, 3))]
    table = pd.DataFrame({"image": [encoded(images[0], "PNG"), encoded(images[1], "PNG")]})
    result = pyfunc.predict(None, table, params={"color": True})
    assert list(result.columns) == ["mask", "color"] and len(result) == 2
    for image, mask, color in zip(images, result["mask"], result["color"], strict=True):
        expected = pyfunc.predictor.predict(image[None])[0][0]
        assert np.array_equal(decoded(mask), expected)
        assert np.array_equal(decoded(color), np.asarray(COLORS, np.uint8)[expected])
    named = pyfunc.predict(None, {"image": np.array([encoded(images[0], "JPEG")])})  # {"inputs": {"image": [...]}}
    assert decoded(named["mask"][0]).shape == (37, 53)


def test_an_array_still_gives_masks_or_probabilities(pyfunc):
    images = np.random.default_rng(1).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    assert pyfunc.predict(None, images).shape == (2, 30, 40)
    assert pyfunc.predict(None, images.tolist(), params={"probabilities": True}).shape == (2, 30, 40, 3)


def test_bad_input_is_one_message_the_server_returns(pyfunc):
    with pytest.raises(MlflowException, match="image row 0: not a base64 image file"):
        pyfunc.predict(None, pd.DataFrame({"image": ["not an image"]}))
    with pytest.raises(MlflowException, match="needs an 'image' column"):
        pyfunc.predict(None, pd.DataFrame({"photo": ["x"]}))
    with pytest.raises(MlflowException, match=r"expected a batch of RGB images \(N, H, W, 3\)"):
        pyfunc.predict(None, np.zeros((2, 3)))
