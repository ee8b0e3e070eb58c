"""``Predictor``: the one path from RGB images to probabilities and masks at their own size.

Each view (a scale of ``size``, maybe mirrored) resizes the images so the long side is the view's
size, then either pads them to the model's stride and predicts them whole, or tiles them into
overlapping windows predicted a batch at a time and blended (``mode=slide``); the logits are
cropped, resized back to the images' size, and the views' probabilities averaged. The mask is the
argmax, post-processed when asked. Per-epoch validation, ``evaluate.py``, ``predict.py``,
ensembles, the MLflow Model and the exports (which trace the same geometry) all predict here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

from animalseg.inference.geometry import prediction_geometry
from animalseg.inference.postprocess import dense_crf, postprocess
from animalseg.inference.settings import InferenceSettings, settings_of

Forward = Callable[[np.ndarray], dict[str, np.ndarray]]


class Predictor:
    """Predicts with ``model`` as ``settings`` say (default: the settings saved in the model).

    ``forward`` runs the model on a padded float batch (default ``model.predict_on_batch``; the
    trainer passes its distribution-aware one). Images in a call share one size (N, H, W, 3),
    uint8 or float in [0, 255]."""

    def __init__(self, model, settings: InferenceSettings | None = None, forward: Forward | None = None):
        self.model = model
        self.settings = settings or settings_of(model) or InferenceSettings()
        self.forward = forward or model.predict_on_batch
        self.stride = int(model.output_stride)

    def outputs(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every head's logits at the images' own size, (N, H, W, C) float32.

        One view gives the model's logits resized; several give the logits of their mean
        probabilities (log p; log p / (1 - p) for a one-channel head), which argmax and the losses
        read as any logits."""
        images = np.asarray(images, np.float32)
        tta = self.settings.tta
        height, width = images.shape[1:3]
        if not tta.enabled:
            return self._view(images, self.settings.size)
        base = self.settings.size if self.settings.size is not None else max(height, width)
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        sums: dict[str, np.ndarray] = {}
        for scale in tta.scales:
            for flipped in (False, True) if tta.flip else (False,):
                outputs = self._view(mirrored if flipped else images, scaled_size(base, scale))
                for key, logits in outputs.items():
                    logits = logits[:, :, ::-1] if flipped else logits
                    probs = softmax(logits) if logits.shape[-1] > 1 else 1.0 / (1.0 + np.exp(-logits))
                    sums[key] = sums[key] + probs if key in sums else probs
        tiny = np.finfo(np.float32).tiny
        result = {}
        for key, total in sums.items():
            mean = np.clip(total / tta.views, tiny, 1.0)
            logits = np.log(mean) if mean.shape[-1] > 1 else np.log(mean) - np.log(np.clip(1.0 - mean, tiny, 1.0))
            result[key] = logits.astype(np.float32)
        return result

    def logits(self, images: np.ndarray) -> np.ndarray:
        """The semantic head's logits at the images' size."""
        return self.outputs(images)[self.model.semantic_head]

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks (N, H, W) uint8 and the probabilities (N, H, W, C) float32 they are the argmax of,
        post-processed as the settings say."""
        return cleaned(softmax(self.logits(images)), images, self.settings)

    def _view(self, images: np.ndarray, size: int | None) -> dict[str, np.ndarray]:
        """One view: resize, predict whole or by windows, crop, resize back."""
        height, width = images.shape[1:3]
        new_h, new_w, pad_h, pad_w = prediction_geometry(height, width, size, self.stride)
        if (new_h, new_w) != (height, width):
            inputs = ops.image.resize(
                images, (new_h, new_w), interpolation="bilinear", antialias=self.settings.antialias
            )
            inputs = ops.convert_to_numpy(inputs)
        else:
            inputs = images
        if self.settings.mode == "slide" and max(new_h, new_w) > self._window():
            outputs = self._slide(inputs)
        else:
            padded = np.pad(inputs, [[0, 0], [0, pad_h - new_h], [0, pad_w - new_w], [0, 0]])
            outputs = {k: np.asarray(v, np.float32)[:, :new_h, :new_w] for k, v in self.forward(padded).items()}
        if (new_h, new_w) == (height, width):
            return outputs
        return {
            k: ops.convert_to_numpy(ops.image.resize(v, (height, width), interpolation="bilinear"))
            for k, v in outputs.items()
        }

    def _window(self) -> int:
        """The window side, a multiple of the stride."""
        return max(self.stride, -(-self.settings.window // self.stride) * self.stride)

    def _slide(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Overlapping windows over (N, H, W, 3), their logits blended with weights that fall off
        towards each window's edges (a window's border sees the least context)."""
        window = self._window()
        count, height, width = images.shape[:3]
        padded_h, padded_w = max(height, window), max(width, window)
        images = np.pad(images, [[0, 0], [0, padded_h - height], [0, padded_w - width], [0, 0]])
        spacing = self.settings.step or window * (1 - self.settings.overlap)
        step = max(self.stride, round(spacing / self.stride) * self.stride)  # windows on the stride's grid
        tops, lefts = _starts(padded_h, window, step), _starts(padded_w, window, step)
        places = [(n, y, x) for n in range(count) for y in tops for x in lefts]
        weight = _window_weight(window)[..., None]
        sums: dict[str, np.ndarray] = {}
        total = np.zeros((count, padded_h, padded_w, 1), np.float32)
        for start in range(0, len(places), self.settings.window_batch):
            chunk = places[start : start + self.settings.window_batch]
            batch = np.stack([images[n, y : y + window, x : x + window] for n, y, x in chunk])
            outputs = self.forward(batch)
            for key, logits in outputs.items():
                target = sums.setdefault(key, np.zeros((count, padded_h, padded_w, logits.shape[-1]), np.float32))
                for (n, y, x), tile in zip(chunk, np.asarray(logits, np.float32), strict=True):
                    target[n, y : y + window, x : x + window] += tile * weight
            for n, y, x in chunk:
                total[n, y : y + window, x : x + window] += weight
        return {k: (v / total)[:, :height, :width] for k, v in sums.items()}


def cleaned(
    probabilities: np.ndarray, images: np.ndarray, settings: InferenceSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Masks and probabilities after ``settings``' post-processing: the dense CRF over the photos
    refines the probabilities, then the argmax's holes are filled and its specks merged. One
    model's and an ensemble's mean probabilities alike."""
    if settings.crf_iterations:
        probabilities = np.stack(
            [dense_crf(image, p, settings.crf_iterations) for image, p in zip(images, probabilities, strict=True)]
        )
    masks = np.argmax(probabilities, axis=-1).astype(np.uint8)
    if settings.fill_holes or settings.min_area:
        masks = np.stack([postprocess(m, settings.fill_holes, settings.min_area) for m in masks])
    return masks, probabilities


def scaled_size(size: int, scale: float) -> int:
    """A TTA view's long side: ``size * scale`` in float32, rounded half to even, as the exported
    graphs compute it (TFLite rounds in float32 only)."""
    return max(1, int(np.round(np.float32(size) * np.float32(scale))))


def _starts(length: int, window: int, step: int) -> list[int]:
    """Window offsets covering ``length``: every ``step``, the last one flush with the end."""
    starts = list(range(0, length - window + 1, step))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _window_weight(window: int) -> np.ndarray:
    """A separable tent, 1 in the middle and small (never 0) at the edges."""
    ramp = np.minimum(np.arange(window) + 0.5, window - np.arange(window) - 0.5) / (window / 2)
    ramp = np.clip(ramp, 0.05, 1.0).astype(np.float32)
    return np.outer(ramp, ramp)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
