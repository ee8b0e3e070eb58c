"""Evaluate a checkpoint: ``python evaluate.py run_id=<id>`` or ``checkpoint=path/best.keras``."""

import hydra
from omegaconf import DictConfig

from animalseg.cli import heavy_task, main_with_usage_exit, report_errors
from animalseg.paths import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    report_errors(heavy_task("animalseg.evaluate:evaluate"))(cfg)


if __name__ == "__main__":
    main_with_usage_exit(main, "evaluate")
