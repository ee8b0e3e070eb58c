"""How long the command line takes to answer: ``python scripts/bench_cli.py [--repeats 5]``.

Times, as a user would meet them, ``train.py --help``, ``train.py --cfg job``, a config error
(``train.py trainer.epochs=0``), ``evaluate.py --help`` and ``predict.py --help``, each a fresh
process, and for scale ``python -c "import tensorflow"``. Prints the median wall and CPU seconds
of each (the CPU time is what a command costs on an idle machine: it runs in one thread), then one
JSON line with them and the machine's load average at the start.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``. On a busy machine
    the wall time stretches; the CPU time is what the command costs on an idle one."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
    wall, cpu = {}, {}
    for name, command in commands.items():
        runs = [timed(command) for _ in range(args.repeats)]
        wall[name] = round(statistics.median(w for w, _ in runs), 2)
        cpu[name] = round(statistics.median(c for _, c in runs), 2)
        print(f"{name:<18} wall {wall[name]:6.2f} s  cpu {cpu[name]:6.2f} s   ({' '.join(command[1:])})")
    result = {"median_wall_seconds": wall, "median_cpu_seconds": cpu, "repeats": args.repeats}
    print(json.dumps({**result, "load_average_1min": round(load, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
