"""Inference speed per format: ``python scripts/bench_infer.py --checkpoint path/last.keras``.

Without ``--checkpoint`` it builds an untrained model from train.py's Hydra overrides (default:
the EfficientNet-Lite0 U-Net). Times ms per image, median of ``--repeats`` runs after a warm-up,
on random uint8 images of ``--sizes`` (square, predicted at that size) in batches of ``--batches``:

- ``keras_predict``: ``model.predict`` on the float batch, the network alone;
- ``keras_pipeline``: predict.py's path (resize, pad, ``predict_on_batch``, crop, softmax, argmax);
- ``saved_model``, ``tflite`` (float32, float16, int8 dynamic range), ``onnx`` (ONNX Runtime):
  the exported graphs, pre- and post-processing included, on every core this process may use.

Prints a table, then one JSON line.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error

LITE0_UNET = ["model=unet_efficientnet", "model.encoder=EfficientNetLite0", "model.encoder_weights=null"]
EXPORTS = [("saved_model", None), ("tflite", None), ("tflite", "float16"), ("tflite", "int8"), ("onnx", None)]


def median_ms_per_image(call, images, repeats: int) -> float:
    call(images)  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(images)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(images)


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a .keras checkpoint (else build from overrides)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    args, overrides = parser.parse_known_args(argv)

    import numpy as np
    from hydra.utils import instantiate

    from animalseg.export import FORMATS, export_model
    from animalseg.inference import InferenceSettings
    from animalseg.sources import ExportedSource, KerasSource
    from animalseg.trained import TrainedModel, load_trained

    if args.checkpoint is not None:
        trained = load_trained(str(args.checkpoint), None, None, Path(tempfile.mkdtemp()))
    else:
        cfg = compose_from_argv(overrides or LITE0_UNET)
        model = instantiate(cfg.model, num_classes=7)
        trained = TrainedModel(model, Path("untrained"), None, [str(i) for i in range(7)], np.zeros((7, 3), np.uint8))
    model = trained.model
    label = args.checkpoint or " ".join(overrides or LITE0_UNET)
    work = Path(tempfile.mkdtemp(prefix="bench_infer_"))
    runners = {
        "keras_predict": lambda x: model.predict(x.astype(np.float32), verbose=0),
        "keras_pipeline": KerasSource(trained, InferenceSettings(), "keras").outputs,
    }
    for fmt, quantize in EXPORTS:
        path = export_model(
            model,
            InferenceSettings(),
            fmt,
            work / f"{fmt}{'_' + quantize if quantize else ''}{FORMATS[fmt][1]}",
            quantize,
        )
        runners[f"{fmt}{'_' + quantize if quantize else ''}"] = ExportedSource(path).outputs

    rng = np.random.default_rng(0)
    results = []
    print(f"{label}: ms per image, median of {args.repeats}")
    print(f"{'format':<18}" + "".join(f"{f'{s}px b{b}':>12}" for s in args.sizes for b in args.batches))
    for name, call in runners.items():
        row = []
        for size in args.sizes:
            for batch in args.batches:
                images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                ms = median_ms_per_image(call, images, args.repeats)
                results.append({"format": name, "size": size, "batch": batch, "ms_per_image": round(ms, 2)})
                row.append(ms)
        print(f"{name:<18}" + "".join(f"{ms:>12.1f}" for ms in row))
    speedup = {}
    for size in args.sizes:
        at = {r["format"]: r["ms_per_image"] for r in results if r["size"] == size and r["batch"] == 1}
        fastest = min((f for f in at if not f.startswith("keras")), key=at.get)
        speedup[str(size)] = {"fastest": fastest, "x_vs_keras_predict": round(at["keras_predict"] / at[fastest], 2)}
        print(f"{size}px batch 1: fastest {fastest}, {speedup[str(size)]['x_vs_keras_predict']}x Keras predict")
    print(json.dumps({"model": str(label), "results": results, "batch1_speedup": speedup}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
