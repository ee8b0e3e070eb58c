"""Predict masks: ``python predict.py run_id=<id> input=path/to/folder_or_image``."""

import hydra
from omegaconf import DictConfig

from animalseg.cli import heavy_task, main_with_usage_exit, report_errors
from animalseg.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    report_errors(heavy_task("animalseg.predict:predict"))(cfg)


if __name__ == "__main__":
    main_with_usage_exit(main, "predict")
