"""``predict.py``: index masks, colour masks and overlays for a folder or list of images."""

from __future__ import annotations

from pathlib import Path

import keras
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig
from PIL import Image

from animalseg.config import run_data_value
from animalseg.data.dataset import colorize
from animalseg.data.images import IMAGE_EXTENSIONS, read_image
from animalseg.errors import ConfigError
from animalseg.inference import TrainedModel, overlay, tta_setting
from animalseg.sources import KerasSettings, ensemble_outputs, load_sources


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
    """Write ``<name>_mask.png`` (indices), ``<name>_color.png`` and ``<name>_overlay.png`` from one
    model or the mean probabilities of several."""
    if cfg.input is None:
        raise ConfigError("input=...: give a folder, an image, or a list [a.jpg,b.png]")
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(".")
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    files = input_images(cfg.input)

    def keras_settings(trained: TrainedModel) -> KerasSettings:
        size = run_data_value(trained.run_config, "eval_size") if cfg.predict_size == "auto" else cfg.predict_size
        antialias = bool(run_data_value(trained.run_config, "antialias", False))
        return KerasSettings(size, tta_setting(cfg, trained.run_config), antialias)

    sources = load_sources(cfg, keras_settings)
    names, colors = sources[0].class_names, sources[0].colors
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for index, path in enumerate(files, start=1):
        image = read_image(path)
        mask = ensemble_outputs(sources, image[None])[0][0]
        Image.fromarray(mask).save(out / f"{path.stem}_mask.png")
        Image.fromarray(colorize(mask, colors)).save(out / f"{path.stem}_color.png")
        Image.fromarray(overlay(image, mask, colors)).save(out / f"{path.stem}_overlay.png")
        progress.update(index)
    classes = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    print(f"\n{len(files)} image(s) → {out} (mask values: {classes})")
    return out
