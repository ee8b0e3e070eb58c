"""How long the command line takes to answer: ``python scripts/bench_cli.py [--repeats 5]``.

Times, as a user would meet them, ``train.py --help``, ``train.py --cfg job``, a config error
(``train.py trainer.epochs=0``), ``evaluate.py --help`` and ``predict.py --help``, each a fresh
process, and for scale ``python -c "import tensorflow"``. Prints the median seconds of each,
then one JSON line with them and the machine's load average at the start.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (median reported)")
    args = parser.parse_args()
    python = sys.executable
    scratch = tempfile.mkdtemp(prefix="bench_cli_")
    commands = {
        "train_help": [python, "train.py", "--help"],
        "train_cfg_job": [python, "train.py", "--cfg", "job"],
        "config_error": [python, "train.py", "trainer.epochs=0", f"hydra.run.dir={scratch}/run"],
        "evaluate_help": [python, "evaluate.py", "--help"],
        "predict_help": [python, "predict.py", "--help"],
        "import_tensorflow": [python, "-c", "import tensorflow"],
    }
    load = os.getloadavg()[0]
    medians = {}
    for name, command in commands.items():
        medians[name] = round(statistics.median(timed(command) for _ in range(args.repeats)), 2)
        print(f"{name:<18} {medians[name]:6.2f} s   ({' '.join(command[1:])})")
    print(json.dumps({"median_seconds": medians, "repeats": args.repeats, "load_average_1min": round(load, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
