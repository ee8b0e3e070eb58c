"""BatchNorm statistics re-estimated for a checkpoint's own weights, scored before and after:
``python scripts/recompute_bn.py checkpoint=<run>/checkpoints/last.keras``.

Made to measure what the weight EMA loses to BatchNorm statistics gathered under the training
weights (Keras's EMA averages the trainable variables only; ``callbacks.ema.recompute_bn`` does
the same at every epoch end of a run): scores ``split`` (default val) as the model predicts
(its own inference settings, native resolution), re-estimates every trained BatchNorm layer's
statistics from ``batches`` training batches (default one epoch, the run's last: its crops, augmentation and
seed) with the weights the checkpoint holds (``animalseg.training.batchnorm``), and scores again.

The run's ``config.yaml`` two folders above the checkpoint gives the data and training settings,
with dotted overrides (``data.root=...``) on top; without it, train.py's overrides
(``data=animals``) compose them. ``save=<path>.keras`` writes the model with the new statistics.
Prints both scores, then one JSON line.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.errors import ConfigError
from animalseg.scripting import compose_from_argv, exit_on_user_error

OWN_KEYS = ("checkpoint", "batches", "split", "save")


@exit_on_user_error
def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    own = {k: v for k, _, v in (a.partition("=") for a in argv) if k in OWN_KEYS}
    overrides = [a for a in argv if a.partition("=")[0] not in OWN_KEYS]
    if not own.get("checkpoint"):
        raise ConfigError("checkpoint=<run>/checkpoints/last.keras is required")

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from animalseg.build import build_data
    from animalseg.trained import load_trained, saved_settings
    from animalseg.training.batchnorm import recompute_batchnorm, trained_batchnorm_layers
    from animalseg.training.evaluation import Evaluator

    with tempfile.TemporaryDirectory() as scratch:
        trained = load_trained(own["checkpoint"], None, None, Path(scratch))
    model = trained.model
    if trained.run_config is None:
        cfg = compose_from_argv(overrides)
    else:
        cfg = trained.run_config
        for override in overrides:
            key, _, value = override.partition("=")
            if "." not in key:
                print(
                    f"note: {override} ignored: {trained.checkpoint.parent.parent / 'config.yaml'} sets the run's {key}"
                )
                continue
            OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, merge=True)
    data = build_data(cfg.data)
    dataset = data.dataset
    if dataset.num_classes != model.num_classes:
        raise ConfigError(
            f"data: the dataset has {dataset.num_classes} classes, {trained.checkpoint} predicts {model.num_classes}; "
            "pick the data it was trained on (e.g. data=animals)"
        )
    split = own.get("split", "val")
    batches = int(own["batches"]) if own.get("batches") else data.steps_per_epoch
    if batches < 1:
        raise ConfigError(f"batches={batches}: must be a positive integer (training batches to estimate from)")
    settings = saved_settings(model, cfg)  # the run's config, or the one composed from the overrides
    evaluator = Evaluator(dataset, split, settings, data.eval_batch_size, 0, data.boundary_width)
    before = evaluator.evaluate(model).scores
    last_epoch = max(int(cfg.trainer.epochs) - 1, 0)
    heads = (model.semantic_head, model.boundary_head)
    training = data.train_data(instantiate(cfg.augmentation), int(cfg.seed), heads, start_epoch=last_epoch)
    started = time.perf_counter()
    images = recompute_batchnorm(model, training.take(batches))
    seconds = time.perf_counter() - started
    after = evaluator.evaluate(model).scores
    if own.get("save"):
        model.save(own["save"])

    print(f"\n{trained.checkpoint} on {split} ({len(dataset.ids(split))} images, native resolution)")
    print(f"{'':<20}{'before':>9}{'after':>9}")
    for key in [f"iou_{name}" for name in dataset.class_names] + ["miou", "pixel_accuracy"]:
        print(f"{key:<20}{before[key]:>9.4f}{after[key]:>9.4f}")
    print(
        f"statistics of {len(trained_batchnorm_layers(model))} BatchNorm layers from {images} training images "
        f"({batches} batches of epoch {last_epoch + 1}) in {seconds:.1f} s"
        + (f"; saved to {own['save']}" if own.get("save") else "")
    )
    result = {
        "checkpoint": str(trained.checkpoint),
        "split": split,
        "miou_before": round(before["miou"], 6),
        "miou_after": round(after["miou"], 6),
        "pixel_accuracy_before": round(before["pixel_accuracy"], 6),
        "pixel_accuracy_after": round(after["pixel_accuracy"], 6),
        "batchnorm_layers": len(trained_batchnorm_layers(model)),
        "images": images,
        "seconds": round(seconds, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
