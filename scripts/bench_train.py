"""Model training throughput: ``python scripts/bench_train.py model=unet data.crop_size=256``.

Takes train.py's Hydra overrides. Compiles the configured model and loss and times
``model.fit`` on fixed in-memory batches (no input pipeline, no callbacks): images/s of the
model's own training step, median of ``--repeats`` timed runs after a warm-up run. Prints a
table, then one JSON line.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    args, overrides = parser.parse_known_args(argv)

    import numpy as np
    import tensorflow as tf
    from hydra.utils import instantiate

    from animalseg.config import validate_config
    from animalseg.data.boundary import boundary_target

    cfg = compose_from_argv(overrides)
    validate_config(cfg)
    instantiate(cfg.hardware).apply()
    crop, batch, classes = cfg.data.crop_size, cfg.data.batch_size, 7
    model = instantiate(cfg.model, num_classes=classes)
    loss = instantiate(cfg.loss)
    model.compile(optimizer=instantiate(cfg.optimizer), jit_compile=cfg.hardware.jit_compile, **loss.compile_kwargs())
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, crop, crop, 3)).astype("float32")
    masks = rng.integers(0, classes, (batch, crop, crop)).astype("int32")
    targets = {"sem_logits": masks, "boundary_logits": tf.stack([boundary_target(m) for m in masks])}
    batches = tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2)
    model.fit(batches, epochs=1, steps_per_epoch=2, verbose=0)  # build, trace, warm up
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
        runs.append(args.steps * batch / (time.perf_counter() - start))
    result = {
        "model": model.name,
        "params": int(model.count_params()),
        "crop": crop,
        "batch": batch,
        "precision": cfg.hardware.precision,
        "bare_img_s": round(statistics.median(runs), 2),
        "runs_img_s": [round(r, 2) for r in runs],
    }
    print(f"{'model':<16}{'params':>12}{'crop':>6}{'batch':>7}{'img/s (median)':>16}")
    print(f"{result['model']:<16}{result['params']:>12,}{crop:>6}{batch:>7}{result['bare_img_s']:>16}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
