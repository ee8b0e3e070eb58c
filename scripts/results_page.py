"""Render a results page from MLflow runs and benchmark output: ``python scripts/results_page.py``.

    python scripts/results_page.py --experiment animals_cpu --output docs/results/animals_cpu.md
    python scripts/results_page.py --tag sweep_dir=outputs/multiruns/seeds --output docs/results/seeds.md
    python scripts/results_page.py --bench outputs/bench/*.txt --title Benchmarks --output docs/results/benchmarks.md

Runs are selected by experiment name (``--experiment``, repeatable), tags (``--tag KEY=VALUE``) and/or
logged params (``--param KEY=VALUE``, such as ``loss.terms.ce.label_smoothing=0.1``; both repeatable, all must
match); a study's parent run is left out (its children are the rows). One row per run,
oldest first: run name, seed, the final weights' ``val_miou``, the IoU of every class, the lowest class, the
first epoch whose ``val_miou`` reached ``--reach`` (0.80) and the minutes from the run's start to its logging,
the run's duration and the command that trained it: ``python train.py`` with the overrides of the run's
``config/overrides.txt`` artifact, or, for a run without that artifact, the params that differ from today's
defaults (said so in the cell). ``--group KEY`` (a logged param such as ``model.decoder``) adds the mean,
standard deviation and 95 % confidence interval of the mean of the final ``val_miou`` per value of that
param; without it, of all the finished runs (a k-fold study's folds); ``--no-summary`` leaves it out, for a
page whose rows are different recipes rather than repeats of one.

A benchmark file is what a ``scripts/bench_*.py`` printed, its last line the JSON result, with the command
that printed it on a line starting with ``$ `` (``(echo "\\$ python $C"; python $C) > file``). Each script
gets one table, a row per file.

The page starts with the command that regenerated it; the figures are the runs' and the files', never typed.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.console import quiet_mlflow
from animalseg.scripting import exit_on_user_error
from animalseg.tracking.sections import class_iou

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES_ARTIFACT = "config/overrides.txt"
# params a run logs that are not config keys, and config keys that say where, not what, a run trains
NOT_CONFIG = ("model.params", "hardware.replicas")
NOT_SCIENCE = ("paths.", "logger.", "hydra.")
# the list of pages that a results folder's index.md keeps between these lines
INDEX_BEGIN, INDEX_END = "<!-- results pages: begin -->", "<!-- results pages: end -->"


@dataclass(frozen=True)
class Bench:
    """One benchmark's output: the command that printed it and its JSON result."""

    path: Path
    command: str
    script: str
    result: dict[str, Any]


def select_runs(client: Any, experiments: list[str], tags: list[str], params: Iterable[str] = ()) -> list[Any]:
    """The runs of ``experiments`` (every experiment when none is named) carrying every ``KEY=VALUE`` of
    ``tags`` and of ``params`` (the config values a run logged), oldest first, without a study's parent run."""
    from animalseg.errors import ConfigError
    from animalseg.tracking.mlflow import KIND_TAG, STUDY

    known = {e.name: e.experiment_id for e in client.search_experiments()}
    missing = [name for name in experiments if name not in known]
    if missing:
        raise ConfigError(
            f"--experiment {missing[0]}: no such experiment in the tracking store "
            f"(there: {', '.join(sorted(known)) or 'none'})"
        )
    ids = [known[name] for name in experiments] or list(known.values())
    clauses = []
    for kind, pairs, example in (("tags", tags, "sweep_dir=outputs/multiruns/seeds"), ("params", params, "seed=1")):
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"--{kind[:-1]} {pair}: expected KEY=VALUE, e.g. --{kind[:-1]} {example}")
            quote = '"' if "'" in value else "'"
            clauses.append(f"{kind}.`{key}` = {quote}{value}{quote}")
    runs = client.search_runs(ids, " and ".join(clauses), max_results=50000) if ids else []
    return sorted((r for r in runs if r.data.tags.get(KIND_TAG) != STUDY), key=lambda r: r.info.start_time)


def param_override(key: str, value: str, prefix: str = "") -> str:
    """``key=value`` as Hydra reads it, from a param as MLflow stored it (Python's str of the value)."""
    value = {"None": "null", "True": "true", "False": "false"}.get(value, value)
    return f"{prefix}{key}={value}"


def command_from_params(params: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    """``python train.py`` with the config keys whose logged value differs from ``defaults`` (``+key``
    for keys the defaults lack, ``~key`` for default keys the run did not have)."""
    science = {k: v for k, v in params.items() if k not in NOT_CONFIG and not k.startswith(NOT_SCIENCE)}
    overrides = [param_override(k, v) for k, v in science.items() if k in defaults and defaults[k] != v]
    overrides += [param_override(k, v, "+") for k, v in science.items() if k not in defaults]
    overrides += [f"~{k}" for k in defaults if k not in science and not k.startswith(NOT_SCIENCE)]
    return shlex.join(["python", "train.py", *overrides])


@functools.cache
def default_params() -> dict[str, str]:
    """Today's default config (``python train.py`` with no overrides) as a run would log its params."""
    from omegaconf import OmegaConf

    from animalseg.scripting import compose_from_argv
    from animalseg.tracking.mlflow import MAX_PARAM_LENGTH, flatten

    config = OmegaConf.to_container(compose_from_argv([]), resolve=True)
    return {k: str(v)[:MAX_PARAM_LENGTH] for k, v in flatten(config).items()}


def run_command(client: Any, run: Any) -> tuple[str, bool]:
    """The command that trained ``run`` from its overrides artifact, else rebuilt from its params
    (then the second value is true)."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = client.download_artifacts(run.info.run_id, OVERRIDES_ARTIFACT, scratch)
            overrides = [line for line in Path(path).read_text().splitlines() if line.strip()]
        except (MlflowException, OSError):
            return command_from_params(run.data.params, default_params()), True
    return shlex.join(["python", "train.py", *overrides]), False


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def first_reaching(client: Any, run: Any, threshold: float) -> str:
    """``epoch N (M.M min)``: the first epoch whose val_miou reached ``threshold`` and the minutes
    from the run's start until it was logged (model building and data loading included)."""
    history = sorted(client.get_metric_history(run.info.run_id, "val_miou"), key=lambda m: (m.step, m.timestamp))
    for metric in history:
        if metric.value >= threshold:
            return f"epoch {metric.step} ({(metric.timestamp - run.info.start_time) / 60000:.1f} min)"
    return "never"


def run_row(client: Any, run: Any, classes: list[str], reach: float) -> list[str]:
    """One table row: name, seed, final val_miou, per-class IoU, lowest class, first epoch reaching
    ``reach``, duration, command."""
    metrics, info = run.data.metrics, run.info
    name = info.run_name or info.run_id[:8]
    if info.status != "FINISHED":
        name = f"{name} ({info.status})"
    ious = {c: v for c, v in class_iou(metrics).items() if c in classes}
    lowest = min(ious, key=ious.get) if ious else None
    minutes = (info.end_time - info.start_time) / 60000 if info.end_time else None
    command, rebuilt = run_command(client, run)
    return [
        name,
        run.data.params.get("seed", "-"),
        fmt(metrics.get("val_miou")),
        *(fmt(ious.get(c)) for c in classes),
        f"{lowest} {ious[lowest]:.3f}" if lowest else "-",
        first_reaching(client, run, reach),
        "running" if minutes is None else f"{minutes:.1f} min",
        f"`{command}`" + (f" (rebuilt from params: no {OVERRIDES_ARTIFACT})" if rebuilt else ""),
    ]


def runs_section(
    client: Any, runs: list[Any], reach: float = 0.80, group: str | None = None, summary: bool = True
) -> str:
    """The runs' table, and (``summary``) the mean, standard deviation and 95 % interval of the mean of
    their final val_miou (per value of the param ``group`` when given): a k-fold study's figure is its
    interval."""
    from animalseg.tracking.study import interval

    classes = sorted({c for r in runs for c in class_iou(r.data.metrics)})
    header = ["run", "seed", "val_miou (final weights)", *(f"IoU {c}" for c in classes), "lowest class"]
    header += [f"first val_miou >= {reach:.2f}", "duration", "command"]
    rows = [run_row(client, run, classes, reach) for run in runs]
    lines = [
        "val_miou and the per-class IoU are the final weights' on the val split (the last epoch's values); "
        "duration is the MLflow run's, start to end (a resumed run's includes the time it was stopped).",
        "",
        markdown_table(header, rows),
    ]
    groups: dict[str, list[float]] = {}
    for run in runs if summary else []:  # a killed or running run's last val_miou is no final figure
        if "val_miou" in run.data.metrics and run.info.status == "FINISHED":
            value = run.data.params.get(group, "-") if group else ""
            groups.setdefault(value, []).append(run.data.metrics["val_miou"])
    for value, finals in groups.items():
        if len(finals) >= 2:
            where = f" with {group}={value}" if group else ""
            spread = interval(finals)
            lines += [
                "",
                f"Final val_miou over {len(finals)} finished runs{where}: mean {spread['mean']:.3f}, "
                f"standard deviation {spread['std']:.3f}, 95 % confidence interval of the mean "
                f"{spread['mean'] - spread['ci95']:.3f} to {spread['mean'] + spread['ci95']:.3f} (Student t).",
            ]
    return "\n".join(lines) + "\n"


def read_bench(path: Path) -> Bench:
    """A benchmark's saved output: its ``$ command`` line and its last line, the JSON result."""
    from animalseg.errors import DataError

    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise DataError(f"--bench {path}: cannot read it ({error.strerror})") from None
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise DataError(
            f"--bench {path}: its last line is not a JSON object; give the whole output of a "
            "scripts/bench_*.py run (it prints its result as JSON last)"
        )
    commands = [line[2:].strip() for line in lines if line.startswith("$ ")]
    if not commands:
        raise DataError(
            f"--bench {path}: no '$ <command>' line; save the command with the output, e.g. "
            f'(echo "\\$ python $C"; python $C) > {path}'
        )
    match = re.search(r"(bench_\w+)\.py", commands[0])
    return Bench(path, commands[0], match.group(1) if match else "benchmark", result)


def flat_scalars(result: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A JSON result's values as table cells: nested objects as dotted keys, lists of plain values
    joined; lists of objects are left to their own table."""
    cells: dict[str, str] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            cells.update(flat_scalars(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            if not any(isinstance(v, (Mapping, list)) for v in value):
                cells[prefix + key] = ", ".join(str(v) for v in value)
        else:
            cells[prefix + key] = "-" if value is None else str(value)
    return cells


def bench_section(script: str, benches: list[Bench]) -> str:
    """One table of a script's results, a row per file; a list of objects in a result (such as
    bench_infer's per-format timings) follows as its own table."""
    cells = [flat_scalars(b.result) for b in benches]
    keys = list(dict.fromkeys(k for c in cells for k in c))
    rows = [[f"`{b.command}`", *(c.get(k, "-") for k in keys)] for b, c in zip(benches, cells, strict=True)]
    parts = [f"## {script}", "", markdown_table(["command", *keys], rows)]
    for bench in benches:
        for key, value in bench.result.items():
            if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
                columns = list(dict.fromkeys(k for v in value for k in v))
                table = markdown_table(columns, [[str(v.get(c, "-")) for c in columns] for v in value])
                parts += ["", f"`{bench.command}`: `{key}`", "", table]
    return "\n".join(parts) + "\n"


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def regenerate_command(args: argparse.Namespace) -> str:
    """The command that rebuilds this page, every choice spelled out."""
    words = ["python", "scripts/results_page.py"]
    if args.experiment or args.tag or args.param:
        words += ["--tracking-uri", args.tracking_uri]
    for name in args.experiment:
        words += ["--experiment", name]
    for tag in args.tag:
        words += ["--tag", tag]
    for param in args.param:
        words += ["--param", param]
    if args.group:
        words += ["--group", args.group]
    if args.no_summary:
        words += ["--no-summary"]
    if args.bench:
        words += ["--bench", *(str(p) for p in args.bench)]
    return shlex.join([*words, "--title", args.title, "--output", str(args.output)])


def render(args: argparse.Namespace, today: datetime.date) -> str:
    """The page's markdown."""
    from animalseg.errors import ConfigError

    if not (args.experiment or args.tag or args.param or args.bench):
        raise ConfigError(
            "nothing to render: give --experiment NAME, --tag KEY=VALUE, --param KEY=VALUE and/or --bench FILE"
        )
    if args.group and args.no_summary:
        raise ConfigError(
            f"--group {args.group} --no-summary: --group asks for the mean per value, --no-summary for none"
        )
    parts = [
        f"# {args.title}",
        "",
        f"Generated on {today.isoformat()} by `{regenerate_command(args)}`; run it again to update this "
        "page rather than editing it.",
    ]
    if args.experiment or args.tag or args.param:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(args.tracking_uri)
        runs = select_runs(client, args.experiment, args.tag, args.param)
        if not runs:
            raise ConfigError(
                f"no runs for --experiment {args.experiment or 'any'} --tag {args.tag or 'none'} "
                f"--param {args.param or 'none'} in {args.tracking_uri}"
            )
        parts += ["", "## Runs", "", runs_section(client, runs, args.reach, args.group, not args.no_summary)]
    if args.bench:
        benches = [read_bench(path) for path in args.bench]
        for script in dict.fromkeys(b.script for b in benches):
            parts += ["", bench_section(script, [b for b in benches if b.script == script])]
    return "\n".join(parts).rstrip("\n") + "\n"


def update_index(folder: Path) -> bool:
    """Relist every page of ``folder`` in its ``index.md``, between the two marker lines (so that a
    new page is linked without editing the index; the site's nav leaves results pages to it)."""
    index = folder / "index.md"
    if not index.is_file() or INDEX_BEGIN not in (text := index.read_text()) or INDEX_END not in text:
        return False
    pages = []
    for page in sorted(folder.glob("*.md")):
        if page != index:
            titles = [line[2:].strip() for line in page.read_text().splitlines() if line.startswith("# ")]
            pages.append(f"- [{titles[0] if titles else page.stem}]({page.name})")
    before, rest = text.split(INDEX_BEGIN, 1)
    after = rest.split(INDEX_END, 1)[1]
    index.write_text(before + "\n".join([INDEX_BEGIN, *pages, INDEX_END]) + after)
    return True


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'outputs' / 'mlflow.db'}")
    )
    parser.add_argument("--experiment", action="append", default=[], help="an MLflow experiment name (repeatable)")
    parser.add_argument("--tag", action="append", default=[], help="KEY=VALUE a run must carry (repeatable)")
    parser.add_argument(
        "--param", action="append", default=[], help="KEY=VALUE a run must have logged as a param (repeatable)"
    )
    parser.add_argument("--group", default=None, help="a param: the mean val_miou per value of it (model.decoder)")
    parser.add_argument(
        "--no-summary",
        action="store_true",
        help="no mean under the table: its rows are different recipes (one idea each), not repeats of one",
    )
    parser.add_argument("--reach", type=float, default=0.80, help="the val_miou whose first epoch is reported")
    parser.add_argument("--bench", nargs="+", type=Path, default=[], help="saved outputs of scripts/bench_*.py")
    parser.add_argument("--title", default="Results", help="the page's title")
    parser.add_argument("--output", type=Path, required=True, help="the page to write, e.g. docs/results/NAME.md")
    args = parser.parse_args(argv)
    quiet_mlflow()
    page = render(args, datetime.datetime.now(datetime.timezone.utc).date())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    print(f"Written: {args.output}")
    if update_index(args.output.parent):
        print(f"Listed in: {args.output.parent / 'index.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
