"""Input-pipeline throughput: ``python scripts/bench_data.py data=animals augmentation=basic``.

Takes train.py's Hydra overrides. Measures images/s of the whole training input pipeline as
training uses it (decode, or the warm in-memory cache, scale/crop/flip, augmentation, boundary
targets, batching), median of ``--repeats`` timed runs after one warm-up pass over the train split
(which fills the cache when the split is kept in memory), and the process's peak RSS. Prints a
table, then one JSON line.

The memory budget (``data.dataset.cache``) on large photos: make an on-disk set, then compare

    python scripts/bench_data.py --make-set /tmp/big --images 4000 --size 1600x1200
    python scripts/bench_data.py data=folder data.root=/tmp/big data.dataset.cache=auto   # → decodes from disk
    python scripts/bench_data.py data=folder data.root=/tmp/big data.dataset.cache=true   # needs the RAM
"""

import argparse
import json
import resource
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
    parser.add_argument("--make-set", metavar="DIR", help="write a folder-layout set of generated photos and exit")
    parser.add_argument("--images", type=int, default=4000, help="--make-set: how many images")
    parser.add_argument("--size", default="1600x1200", help="--make-set: WIDTHxHEIGHT")
    args, overrides = parser.parse_known_args(argv)
    if args.make_set:
        width, height = (int(v) for v in args.size.lower().split("x"))
        make_set(Path(args.make_set), args.images, width, height)
        return 0

    from hydra.core.hydra_config import HydraConfig  # noqa: F401  (imports Hydra before TF)
    from hydra.utils import instantiate

    from animalseg.data.module import DataModule
    from animalseg.models.base import SegmentationModel

    cfg = compose_from_argv(overrides)
    data = DataModule.from_config(cfg.data)
    augmentation = instantiate(cfg.augmentation)
    if data.dataset.caches("train"):  # warm the decode cache, as epoch 1 does
        for index in range(len(data.dataset.ids("train"))):
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
        "cache": str(data.dataset.cache),
        "train_in_memory": data.dataset.caches("train"),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "overrides": overrides,
    }
    print(
        f"{'augmentation':<14}{'crop':>6}{'batch':>7}{'in memory':>11}{'peak RSS GiB':>14}{'img/s (median)':>16}   runs"
    )
    row = (
        result["augmentation"],
        result["crop"],
        result["batch"],
        str(result["train_in_memory"]),
        result["peak_rss_gib"],
        result["img_s"],
        result["runs_img_s"],
    )
    print("{:<14}{:>6}{:>7}{:>11}{:>14}{:>16}   {}".format(*row))
    print(json.dumps(result))
    return 0


def make_set(root: Path, count: int, width: int, height: int) -> None:
    """``count`` JPEG photos (textured background, 1-3 filled polygons of classes 1-3) with palette
    index masks, in the folder layout with a classes.txt: a stand-in for a user's large photos."""
    import cv2
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("background\nred\ngreen\nblue\n")
    tints = np.array([(90, 110, 80), (200, 70, 60), (70, 170, 90), (60, 90, 200)], np.int16)
    rng = np.random.default_rng(0)
    # a few full-size textures, shifted per image: generating noise for each photo would dominate
    textures = [
        cv2.resize(rng.normal(0, 25, (height // 8, width // 8, 3)).astype(np.float32), (width, height)).astype(np.int16)
        + rng.integers(-8, 9, (height, width, 3), dtype=np.int16)
        for _ in range(4)
    ]
    for index in range(count):
        image_path, mask_path = root / "images" / f"{index:05d}.jpg", root / "masks" / f"{index:05d}.png"
        if image_path.is_file() and mask_path.is_file():  # written by an earlier, interrupted call
            continue
        mask = np.zeros((height, width), np.uint8)
        for _ in range(rng.integers(1, 4)):
            points = rng.integers(0, (width, height), size=(rng.integers(3, 7), 2)).astype(np.int32)
            cv2.fillPoly(mask, [points], int(rng.integers(1, 4)))
        texture = np.roll(textures[index % 4], int(rng.integers(0, width)), axis=1)
        photo = np.clip(tints[mask] + texture, 0, 255).astype(np.uint8)
        Image.fromarray(mask, mode="P").save(mask_path)
        Image.fromarray(photo).save(image_path, quality=90)  # last: an image without its mask is redone
    print(f"{count} images of {width}x{height} in {root}")


def overrides_value(overrides: list[str], key: str, default: str) -> str:
    """The value given on the command line for ``key=...``, else ``default``."""
    for override in overrides:
        if override.startswith(f"{key}="):
            return override.split("=", 1)[1]
    return default


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
