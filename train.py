"""Train a segmentation model: ``python train.py [group=option] [key=value] [-m]``."""

import hydra
from omegaconf import DictConfig

from animalseg.cli import main_with_usage_exit, report_errors
from animalseg.paths import register_resolvers
from animalseg.run import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = report_errors(run)(cfg)
    return None if metrics is None else metrics.get("val_miou")


if __name__ == "__main__":
    main_with_usage_exit(main)
