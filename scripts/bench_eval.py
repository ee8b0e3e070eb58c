"""Full-val evaluation throughput: ``python scripts/bench_eval.py data=animals model=unet``.

Takes train.py's Hydra overrides. Times the framework's whole-split evaluation (resize to
``data.eval_size``, inference, logits back to native size, confusion matrix, val losses) of the
configured (untrained) model, median of ``--repeats`` passes after a warm-up pass. Prints a
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
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    args, overrides = parser.parse_known_args(argv)

    from hydra.utils import instantiate

    from animalseg.config import validate_config
    from animalseg.training.evaluation import Evaluator

    cfg = compose_from_argv(overrides)
    validate_config(cfg)
    instantiate(cfg.hardware).apply()
    data = instantiate(cfg.data)
    model = instantiate(cfg.model, num_classes=data.dataset.num_classes)
    loss = instantiate(cfg.loss, ignore_index=data.dataset.ignore_index)
    evaluator = Evaluator(
        data.dataset, "val", data.eval_size, data.eval_batch_size, model.output_stride, 0, data.boundary_width
    )
    evaluator.evaluate(model, loss)  # warm-up: decode cache, tracing
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluator.evaluate(model, loss)
        runs.append(time.perf_counter() - start)
    count = len(data.dataset.ids("val"))
    result = {
        "model": model.name,
        "images": count,
        "eval_size": data.eval_size,
        "batch": data.eval_batch_size,
        "img_s": round(count / statistics.median(runs), 2),
        "seconds": round(statistics.median(runs), 2),
        "runs_s": [round(r, 2) for r in runs],
    }
    print(f"{'model':<22}{'images':>7}{'eval size':>10}{'img/s':>9}{'s/pass':>8}")
    print(f"{result['model']:<22}{count:>7}{data.eval_size!s:>10}{result['img_s']:>9}{result['seconds']:>8}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
