"""A photo far larger than the training crop, predicted at its own resolution by sliding windows:
``python scripts/bench_large.py [--checkpoint path/last.keras] [--size 4000 3000] [--window 224]``.

Without ``--checkpoint`` it builds an untrained model from train.py's Hydra overrides (default:
the EfficientNet-Lite0 U-Net; time and memory do not depend on the weights). Predicts one random
RGB photo of ``--size`` (width height) at its native size with ``inference.mode=slide``, windows
of ``--window`` pixels overlapping by ``--overlap``, ``--window-batch`` at a time, and reports the
seconds and the process's peak resident memory before and after (``ru_maxrss``); ``--whole`` also
predicts it in one pass at its native size, for comparison, after the sliding window (the peak
only grows). Prints a table, then one JSON line.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error

LITE0_UNET = ["model=unet_efficientnet", "model.encoder=EfficientNetLite0", "model.encoder_weights=null"]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a .keras checkpoint (else build from overrides)")
    parser.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--window", type=int, default=224)
    parser.add_argument("--overlap", type=float, default=1 / 3)
    parser.add_argument("--window-batch", type=int, default=4)
    parser.add_argument("--whole", action="store_true", help="also predict in one pass at native size")
    args, overrides = parser.parse_known_args(argv)

    import numpy as np
    from hydra.utils import instantiate

    from animalseg.inference import InferenceSettings, Predictor
    from animalseg.trained import load_trained

    if args.checkpoint is not None:
        model = load_trained(str(args.checkpoint), None, None, Path("."))
    else:
        model = instantiate(compose_from_argv(overrides or LITE0_UNET).model, num_classes=7)
    model = getattr(model, "model", model)
    width, height = args.size
    photo = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    slide = InferenceSettings(
        size=None, mode="slide", window=args.window, overlap=args.overlap, window_batch=args.window_batch
    )
    Predictor(model, slide).predict(photo[:, : args.window * 2, : args.window * 2])  # warm-up: tracing
    results = {"width": width, "height": height, "window": args.window, "window_batch": args.window_batch}
    results["peak_gib_before"] = round(peak_gib(), 2)
    modes = [("slide", slide)] + ([("whole", InferenceSettings(size=None))] if args.whole else [])
    for name, settings in modes:
        start = time.perf_counter()
        masks, _ = Predictor(model, settings).predict(photo)
        results[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
        results[f"{name}_peak_gib"] = round(peak_gib(), 2)
        assert masks.shape == (1, height, width)
    print(f"{width}x{height} photo at native resolution, windows of {args.window} px:")
    for name, _ in modes:
        print(f"  {name:<6} {results[f'{name}_seconds']:>8.1f} s   peak resident {results[f'{name}_peak_gib']:.2f} GiB")
    print(f"  (peak before predicting: {results['peak_gib_before']:.2f} GiB)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
