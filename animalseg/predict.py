"""``predict.py``: index masks, colour masks and overlays for a folder or list of images."""

from __future__ import annotations

from pathlib import Path

import keras
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig
from PIL import Image

from animalseg.data.dataset import colorize
from animalseg.data.images import IMAGE_EXTENSIONS, read_image
from animalseg.errors import ConfigError
from animalseg.pictures import legend, overlay, with_legend
from animalseg.sources import ensemble_outputs, load_sources


def input_images(inputs: str | list[str]) -> list[Path]:
    """Image files from a folder, one file, or a list of either."""
    items = list(inputs) if isinstance(inputs, (list, ListConfig)) else [inputs]
    files: list[Path] = []
    for item in items:
        path = Path(str(item)).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"input={item}: no such file or folder")
    if not files:
        raise ConfigError(f"input={inputs}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


def predict(cfg: DictConfig) -> Path:
    """Write ``<name>_mask.png`` (indices), ``<name>_color.png`` (the mask in the class colours, at
    the image's size) and ``<name>_overlay.png`` (the photo, its outlined classes and a legend of
    those present) from one model or the mean probabilities of several, and ``legend.png`` (every
    class and its colour)."""
    if cfg.input is None:
        raise ConfigError("input=...: give a folder, an image, or a list [a.jpg,b.png]")
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(".")
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    files = input_images(cfg.input)

    sources, overrides = load_sources(cfg)
    for source in sources:
        if source.settings is not None:
            print(f"{source.label} predicts with: {source.settings.describe()}")
    if overrides:
        print(f"  (this command's overrides: {', '.join(overrides)})")
    names, colors = sources[0].class_names, sources[0].colors
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for index, path in enumerate(files, start=1):
        image = read_image(path)
        mask = ensemble_outputs(sources, image[None])[0][0]
        Image.fromarray(mask).save(out / f"{path.stem}_mask.png")
        Image.fromarray(colorize(mask, colors)).save(out / f"{path.stem}_color.png")
        Image.fromarray(with_legend(overlay(image, mask, colors), names, colors, mask)).save(
            out / f"{path.stem}_overlay.png"
        )
        progress.update(index)
    Image.fromarray(legend(names, colors)).save(out / "legend.png")
    classes = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    print(f"\n{len(files)} image(s) → {out} (mask values: {classes})")
    return out
