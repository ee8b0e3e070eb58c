"""The pictures ``predict.py`` writes for people: the photo with its classes blended on top, each
region outlined so a dark class colour still shows, and a legend of the classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from animalseg.data.dataset import colorize

DARK = 110.0  # luma below which a colour is hard to see on a photo (the animals set's hyena, 7,73,80, is 54)
SWATCH = 14  # legend: square side and text height, pixels


def visible(color: Sequence[int]) -> np.ndarray:
    """``color``, or a lighter variant of it (halfway to white) when it is too dark to see."""
    rgb = np.asarray(color, np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return (rgb if luma >= DARK else rgb + (255 - rgb) * 0.5).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo with its predicted classes blended on top (background, class 0, left as is) and
    every class region outlined in its colour (lightened when dark)."""
    coloured = colorize(mask, colors).astype(np.float32)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * image + alpha * coloured, image)
    blend = np.clip(blend, 0, 255).astype(np.uint8)
    for label in np.unique(mask):
        if label == 0 or label >= len(colors):
            continue
        region = mask == label
        edge = region & ~ndimage.binary_erosion(region, iterations=max(1, min(mask.shape) // 200))
        blend[edge] = visible(colors[label])
    return blend


def legend(names: Sequence[str], colors: np.ndarray, present: Sequence[int] | None = None) -> np.ndarray:
    """An RGB strip listing ``present`` classes (default all): a swatch of the colour, with the
    lightened variant as its border when it is dark, and the name."""
    chosen = list(range(len(names))) if present is None else [int(i) for i in present if i < len(names)]
    font = ImageFont.load_default()
    width = max(
        [160]
        + [int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(names[i], font=font)) + 3 * SWATCH for i in chosen]
    )
    picture = Image.new("RGB", (width, (SWATCH + 6) * max(1, len(chosen)) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for row, index in enumerate(chosen):
        top = 4 + row * (SWATCH + 6)
        color = tuple(int(v) for v in colors[index])
        draw.rectangle(
            [4, top, 4 + SWATCH, top + SWATCH], fill=color, outline=tuple(int(v) for v in visible(color)), width=2
        )
        draw.text((SWATCH + 12, top + 1), f"{index} {names[index]}", fill=(0, 0, 0), font=font)
    return np.asarray(picture)


def with_legend(picture: np.ndarray, names: Sequence[str], colors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``picture`` with a legend of the classes in ``mask`` below it."""
    strip = legend(names, colors, np.unique(mask).tolist())
    width = max(picture.shape[1], strip.shape[1])
    canvas = np.full((picture.shape[0] + strip.shape[0], width, 3), 255, np.uint8)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    canvas[picture.shape[0] :, : strip.shape[1]] = strip
    return canvas
