"""Train a segmentation model: ``python train.py [group=option] [key=value] [-m]``."""

import hydra
from omegaconf import DictConfig

from animalseg.cli import heavy_task, main_with_usage_exit, report_errors
from animalseg.config import validate_config
from animalseg.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = report_errors(heavy_task("animalseg.run:run", validate_config))(cfg)
    return None if metrics is None else metrics.get("val_miou")


if __name__ == "__main__":
    main_with_usage_exit(main, "train")
