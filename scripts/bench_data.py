"""Input-pipeline throughput: ``python scripts/bench_data.py data=animals augmentation=basic``.

Takes train.py's Hydra overrides. Measures images/s of the whole training input pipeline as
training uses it (decode from the warm cache, scale/crop/flip, augmentation, boundary targets,
batching), median of ``--repeats`` timed runs after one warm-up pass that fills the decode cache.
Prints a table, then one JSON line.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error


def images_per_second(dataset, batches: int, batch_size: int) -> float:
    iterator = iter(dataset)
    next(iterator)  # pipeline start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    args, overrides = parser.parse_known_args(argv)

    from hydra.core.hydra_config import HydraConfig  # noqa: F401  (imports Hydra before TF)
    from hydra.utils import instantiate

    from animalseg.data.module import DataModule
    from animalseg.models.base import SegmentationModel

    cfg = compose_from_argv(overrides)
    data = DataModule.from_config(cfg.data)
    augmentation = instantiate(cfg.augmentation)
    for index in range(len(data.dataset.ids("train"))):  # warm the decode cache, as epoch 1 does
        data.dataset.load("train", index)
    runs = [
        images_per_second(
            data.train_data(
                augmentation, cfg.seed + r, (SegmentationModel.semantic_head, SegmentationModel.boundary_head)
            ),
            args.batches,
            data.batch_size,
        )
        for r in range(args.repeats)
    ]
    result = {
        "data": cfg.data.dataset._target_.rsplit(".", 1)[-1],
        "augmentation": overrides_value(overrides, "augmentation", "basic"),
        "crop": data.crop_size,
        "batch": data.batch_size,
        "img_s": round(statistics.median(runs), 1),
        "runs_img_s": [round(r, 1) for r in runs],
        "overrides": overrides,
    }
    print(f"{'augmentation':<14}{'crop':>6}{'batch':>7}{'img/s (median)':>16}   runs")
    row = (result["augmentation"], result["crop"], result["batch"], result["img_s"], result["runs_img_s"])
    print("{:<14}{:>6}{:>7}{:>16}   {}".format(*row))
    print(json.dumps(result))
    return 0


def overrides_value(overrides: list[str], key: str, default: str) -> str:
    """The value given on the command line for ``key=...``, else ``default``."""
    for override in overrides:
        if override.startswith(f"{key}="):
            return override.split("=", 1)[1]
    return default


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
