"""Compare MLflow runs: ``python scripts/compare_runs.py --experiment ablation_cpu``.

Writes ``comparison.md`` (the final weights' val mIoU first, then the best epoch's "selected on
val", pixel accuracy and per-class IoU of the final weights (``n/a``: a class the final evaluation
could not score), model, encoder, loss, alpha, gamma,
boundary weight, epochs, time per epoch, params), ``class_iou.png`` (grouped
bars) and ``val_miou_curves.png`` to ``--output``, and prints the table.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]


@exit_on_user_error
def main(argv: list[str]) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="animalseg", help="MLflow experiment name")
    parser.add_argument("--sweep", default=None, help="only runs whose sweep_dir tag contains this")
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'outputs' / 'mlflow.db'}")
    )
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "comparisons")
    args = parser.parse_args(argv)

    from animalseg.tracking.compare import compare

    path = compare(args.tracking_uri, args.experiment, args.output / args.experiment, args.sweep)
    print(path.read_text())
    print(f"Written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
