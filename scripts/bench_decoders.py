"""What each decoder costs: ``python scripts/bench_decoders.py [--encoders EfficientNetLite0 EfficientNetLite1]``.

For every decoder of ``model.decoder`` on each encoder (``model=unet_efficientnet`` with its
defaults, untrained: cost does not depend on the weights), it reports the parameters, the forward
GFLOPs of one ``--size`` px image (TensorFlow's profiler) and the training images/s: ``train_on_batch``
on one fixed batch of ``--batch`` crops, the cross-entropy of both heads, Adam; the models are timed
in turns (``--rounds`` rounds of ``--steps`` steps each, after a warm-up), so a machine that slows
down mid-run slows every decoder alike, and the median round is reported. Extra train.py overrides
apply to every model (``model.decoder_channels=128``). Prints a table, then one JSON line.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.compat.tensorflow import forward_flops
from animalseg.scripting import compose_from_argv, exit_on_user_error


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["EfficientNetLite0", "EfficientNetLite1"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args, overrides = parser.parse_known_args(argv)

    import keras
    import numpy as np
    from hydra.utils import instantiate

    from animalseg.models.decoders import DECODERS

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
    labels = {
        "sem_logits": rng.integers(0, 7, (args.batch, args.size, args.size)),
        "boundary_logits": rng.integers(0, 2, (args.batch, args.size, args.size, 1)).astype(np.float32),
    }
    losses = {
        "sem_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "boundary_logits": keras.losses.BinaryCrossentropy(from_logits=True),
    }
    models = {}
    for encoder in args.encoders:
        for decoder in DECODERS:
            cfg = compose_from_argv(
                ["model=unet_efficientnet", f"model.encoder={encoder}", "model.encoder_weights=null",
                 f"model.decoder={decoder}", *overrides]
            )  # fmt: skip
            model = instantiate(cfg.model, num_classes=7)
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=losses)
            model.train_on_batch(images, labels)  # warm-up: tracing
            models[(encoder, decoder)] = {
                "model": model,
                "params_m": round(model.count_params() / 1e6, 2),
                "gflops": round(forward_flops(model, args.size) / 1e9, 2),
                "rounds": [],
            }
    for _ in range(args.rounds):
        for entry in models.values():
            start = time.perf_counter()
            for _ in range(args.steps):
                entry["model"].train_on_batch(images, labels)
            entry["rounds"].append(args.steps * args.batch / (time.perf_counter() - start))
    results = []
    print(f"{args.size} px, batch {args.batch}: parameters, forward GFLOPs per image, training images/s (median)")
    print(f"{'encoder':<20}{'decoder':<16}{'params M':>10}{'GFLOPs':>9}{'img/s':>8}")
    for (encoder, decoder), entry in models.items():
        row = {
            "encoder": encoder,
            "decoder": decoder,
            "params_m": entry["params_m"],
            "gflops_per_image": entry["gflops"],
            "train_images_per_s": round(statistics.median(entry["rounds"]), 2),
        }
        results.append(row)
        print(
            f"{encoder:<20}{decoder:<16}{row['params_m']:>10}{row['gflops_per_image']:>9}{row['train_images_per_s']:>8}"
        )
    print(json.dumps({"size": args.size, "batch": args.batch, "overrides": overrides, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
