"""How a model predicts, as data: saved in the model's own config (``SegmentationModel.inference``)
when training builds it, so whatever loads the model later predicts as its run validated.

Training fills them from ``data.eval_size``, ``data.antialias``, the ``tta`` group and the
``inference`` group (``inference_settings`` in ``animalseg/build.py``); ``evaluate.py`` and
``predict.py`` change them only through their own ``inference.*``, ``tta=`` and ``predict_size``
overrides, which they print.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from animalseg.errors import ConfigError

MODES = ("whole", "slide")
MAX_OVERLAP = 0.9  # beyond it the windows (one step per pixel at 1) multiply without a gain


@dataclass(frozen=True)
class TestTimeAugmentation:
    """The views a prediction averages: the image at each of ``scales`` x the prediction size,
    and with ``flip`` each also mirrored left-right (the ``tta`` config group)."""

    __test__ = False  # not a pytest class

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(s <= 0 for s in scales):
            raise ConfigError(f"tta.scales={list(scales)}: must be a non-empty list of positive numbers")
        object.__setattr__(self, "flip", bool(self.flip))
        object.__setattr__(self, "scales", scales)

    @property
    def enabled(self) -> bool:
        """Whether there is more than the plain single view."""
        return self.flip or self.scales != (1.0,)

    @property
    def views(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def describe(self) -> str:
        views = [f"x{s:g}" for s in self.scales]
        return f"TTA: scales {', '.join(views)}{' + flips' if self.flip else ''}" if self.enabled else "no TTA"


NO_TTA = TestTimeAugmentation()


def tta_from_config(node: Mapping[str, Any] | None) -> TestTimeAugmentation:
    """The ``tta`` group's node (``flip``, ``scales``; its ``_target_`` names this class) as
    settings, each problem one line naming its key; ``None`` is no TTA."""
    if node is None:
        return NO_TTA
    unknown = sorted(set(node) - {"_target_", "flip", "scales"})
    if unknown:
        raise ConfigError(f"tta.{unknown[0]}: not a setting; the tta settings are flip and scales")
    scales = node.get("scales", (1.0,))
    if not isinstance(scales, Sequence) or isinstance(scales, str) or not all(_number(s) for s in scales):
        raise ConfigError(f"tta.scales={scales!r}: must be a list of positive numbers, e.g. [0.75, 1.0, 1.25]")
    return TestTimeAugmentation(flip=bool(node.get("flip", False)), scales=tuple(scales))


@dataclass(frozen=True)
class InferenceSettings:
    """Everything between an RGB image and its mask.

    ``size``: the long side the model sees (``None``: the image's own); ``antialias``: low-pass
    filter that downscale; ``tta``: the views averaged; ``mode``: ``whole`` (the resized image in
    one pass) or ``slide`` (windows of ``window`` pixels every ``step`` pixels, by default
    ``window x (1 - overlap)``, predicted
    ``window_batch`` at a time and blended, for images far larger than the training crop, in
    memory bounded by the window); post-processing: ``crf_iterations`` of a dense CRF over the
    probabilities and the photo (0 = off), then of the mask ``fill_holes`` (background enclosed by
    one object class becomes that class) and ``min_area`` (connected regions smaller than this many
    pixels take the class around them; 0 = off).
    """

    size: int | None = None
    antialias: bool = False
    tta: TestTimeAugmentation = NO_TTA
    mode: str = "whole"
    window: int = 512
    overlap: float = 1 / 3
    step: int | None = None
    window_batch: int = 4
    fill_holes: bool = False
    min_area: int = 0
    crf_iterations: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.size is not None and (not _integer(self.size) or self.size <= 0):
            problems.append(f"inference.size={self.size!r}: must be a positive integer or null (native)")
        if self.mode not in MODES:
            problems.append(f"inference.mode={self.mode!r}: must be one of {', '.join(MODES)}")
        if not _integer(self.window) or self.window <= 0:
            problems.append(f"inference.window={self.window!r}: must be a positive integer (pixels)")
        if not _number(self.overlap) or not 0 <= self.overlap <= MAX_OVERLAP:
            problems.append(f"inference.overlap={self.overlap!r}: must be a number in [0, {MAX_OVERLAP}]")
        if self.step is not None and (not _integer(self.step) or not 0 < self.step <= self.window):
            problems.append(
                f"inference.step={self.step!r}: must be a whole number of pixels from 1 to inference.window "
                f"({self.window}, so the windows cover the image), or null (from overlap)"
            )
        if not _integer(self.window_batch) or self.window_batch <= 0:
            problems.append(f"inference.window_batch={self.window_batch!r}: must be a positive integer")
        if not _integer(self.min_area) or self.min_area < 0:
            problems.append(f"inference.min_area={self.min_area!r}: must be an integer >= 0 (0 = off)")
        if not _integer(self.crf_iterations) or self.crf_iterations < 0:
            problems.append(f"inference.crf_iterations={self.crf_iterations!r}: must be an integer >= 0 (0 = off)")
        if not isinstance(self.tta, TestTimeAugmentation):
            problems.append(f"tta={self.tta!r}: must be test-time augmentation settings (flip, scales)")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def postprocesses(self) -> bool:
        return self.fill_holes or self.min_area > 0 or self.crf_iterations > 0

    def to_config(self) -> dict[str, Any]:
        """Plain JSON values, as a ``.keras`` file's config keeps them."""
        config = dataclasses.asdict(self)
        config["tta"] = {"flip": self.tta.flip, "scales": list(self.tta.scales)}
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InferenceSettings:
        """From plain values (a model's saved config, the ``inference`` group), each problem one
        line naming its key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"inference.{unknown[0]}: not a setting; the settings are {', '.join(sorted(known))}")
        values = {k: v for k, v in config.items() if v is not None or k in ("size", "step")}
        if isinstance(values.get("tta"), Mapping):
            values["tta"] = tta_from_config(values["tta"])
        return cls(**values)

    def replace(self, **changes: Any) -> InferenceSettings:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line: how this predicts (printed by every evaluation)."""
        size = "native size" if self.size is None else f"long side {self.size}"
        parts = [size + (" (antialiased)" if self.antialias else ""), self.tta.describe()]
        if self.mode == "slide":
            spacing = f"every {self.step} px" if self.step else f"overlap {self.overlap:g}"
            parts.append(f"sliding {self.window} px windows, {spacing}")
        post = [
            *([f"dense CRF x{self.crf_iterations}"] if self.crf_iterations else []),
            *(["holes filled"] if self.fill_holes else []),
            *([f"regions < {self.min_area} px merged"] if self.min_area else []),
        ]
        parts.append(", ".join(post) if post else "no post-processing")
        return "; ".join(parts)


def settings_of(model: Any) -> InferenceSettings | None:
    """The settings saved in ``model`` (``None`` for a model saved before models carried them)."""
    saved = getattr(model, "inference", None)
    return None if saved is None else InferenceSettings.from_config(saved)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
