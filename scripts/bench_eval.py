"""Full-val evaluation throughput: ``python scripts/bench_eval.py data=animals model=unet``.

Takes train.py's Hydra overrides. Times the framework's whole-split evaluation (resize to
``data.eval_size``, inference, logits back to native size, confusion matrix, val losses) of the
configured (untrained) model, median of ``--repeats`` passes after a warm-up pass, and the time
spent in Boundary IoU within a pass (``boundary_iou_cost`` = that time over the rest of the pass).
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


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    args, overrides = parser.parse_known_args(argv)

    from animalseg.build import build_run
    from animalseg.config import validate_config
    from animalseg.training.evaluation import Evaluator

    cfg = compose_from_argv(overrides)
    validate_config(cfg)
    parts = build_run(cfg)
    data, model, loss = parts.data, parts.model, parts.job.loss

    from animalseg.training import evaluation

    class TimedBoundaryIoU(evaluation.BoundaryIoU):
        """Boundary IoU that adds up the time its updates take (a pass is too noisy to difference)."""

        seconds = 0.0

        def update(self, target, prediction) -> None:
            start = time.perf_counter()
            super().update(target, prediction)
            TimedBoundaryIoU.seconds += time.perf_counter() - start

    evaluation.BoundaryIoU = TimedBoundaryIoU
    evaluator = Evaluator(
        data.dataset, "val", batch_size=data.eval_batch_size, num_examples=0, boundary_width=data.boundary_width
    )
    evaluator.evaluate(model, loss)  # warm-up: decode cache, tracing
    runs, boundary = [], []
    for _ in range(args.repeats):
        TimedBoundaryIoU.seconds = 0.0
        start = time.perf_counter()
        evaluator.evaluate(model, loss)
        runs.append(time.perf_counter() - start)
        boundary.append(TimedBoundaryIoU.seconds)
    seconds, boundary_seconds = statistics.median(runs), statistics.median(boundary)
    count = len(data.dataset.ids("val"))
    result = {
        "model": model.name,
        "images": count,
        "eval_size": data.eval_size,
        "batch": data.eval_batch_size,
        "img_s": round(count / seconds, 2),
        "seconds": round(seconds, 2),
        "runs_s": [round(r, 2) for r in runs],
        "boundary_iou_seconds": round(boundary_seconds, 2),
        "boundary_iou_cost": round(boundary_seconds / (seconds - boundary_seconds), 3),
    }
    print(f"{'model':<22}{'images':>7}{'eval size':>10}{'img/s':>9}{'s/pass':>8}{'+boundary IoU':>15}")
    print(
        f"{result['model']:<22}{count:>7}{data.eval_size!s:>10}{result['img_s']:>9}{result['seconds']:>8}"
        f"{100 * result['boundary_iou_cost']:>14.1f}%"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
