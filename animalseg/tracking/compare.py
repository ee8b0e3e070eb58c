"""Compare the runs of an experiment or sweep: one markdown table and two figures.

The final weights' ``val_miou`` leads: it is what the run delivers. The best epoch's
(``best_val_miou``) is shown after it, labelled "selected on val": picked on the same split it is
scored on, so it is an optimistic figure.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from animalseg.errors import ConfigError
from animalseg.tracking.mlflow import KIND_TAG, STUDY
from animalseg.tracking.sections import class_iou, metric_key

FINAL_MIOU = "val_miou (final weights)"
BEST_MIOU = "best_val_miou (selected on val)"
BEST = metric_key("best_epoch")
COLUMNS = (
    "run",
    FINAL_MIOU,
    BEST_MIOU,
    "best epoch",
    "pixel acc.",
    "status",
    "model",
    "encoder",
    "loss",
    "loss settings",
    "boundary w.",
    "epochs",
    "s/epoch",
    "params",
)
NOT_SCORED = "n/a"
NOTE = (
    f"`{FINAL_MIOU}`: the weights the run ends with (the EMA weights with the ema callback); "
    f"`{BEST_MIOU}`: the best epoch's, picked on the split it is scored on. Pixel accuracy and "
    f"per-class IoU are the final weights'; `{NOT_SCORED}`: a class the final evaluation could not "
    "score (neither in the split's ground truth nor predicted), left out of means; `-`: not logged."
)


def find_runs(client: MlflowClient, experiment: str, sweep: str | None = None) -> list[Run]:
    """Finished-or-not runs of ``experiment`` (and of one sweep folder when given), oldest first;
    a study's parent run (its summary) is not one of them."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(e.name for e in client.search_experiments())
        raise ConfigError(f"experiment {experiment!r} not found in the tracking store (there: {names or 'none'})")
    query = f"tags.sweep_dir LIKE '%{sweep}%'" if sweep else ""
    runs = [r for r in client.search_runs([found.experiment_id], query) if r.data.tags.get(KIND_TAG) != STUDY]
    return sorted(runs, key=lambda r: r.info.start_time)


def _model_name(run: Run) -> str:
    """The model as it named itself (the run's ``model`` tag: ``fpn_efficientnetlite1``, decoder and
    encoder, where the ``_target_`` class says ``EncoderUNet`` for every decoder), or, for a run
    logged without the tag, its ``_target_``'s last name."""
    if run.data.tags.get("model"):
        return run.data.tags["model"]
    target = run.data.params.get("model._target_", "?").rsplit(".", 1)[-1]
    return {"build_unet": "unet", "build_attention_unet": "attention_unet", "build_unet_encoder": "unet_encoder"}.get(
        target, target
    )


def _loss_columns(params: dict) -> dict[str, str]:
    """The loss's terms (``focal + 0.5 dice``) and their own arguments (``focal.gamma=2.0``) from
    the run's ``loss.terms.<name>.<argument>`` params."""
    terms: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        if key.startswith("loss.terms."):
            name, _, argument = key[len("loss.terms.") :].partition(".")
            terms.setdefault(name, {})[argument] = value
    if not terms:  # a run logged before the loss had terms: loss.semantic and the focal's keys
        settings = " ".join(f"{key[5:]}={params[key]}" for key in ("loss.alpha", "loss.gamma") if key in params)
        return {"loss": params.get("loss.semantic", "-"), "loss settings": settings or "-"}
    names = [name if float(t.get("weight", 1)) == 1 else f"{float(t['weight']):g} {name}" for name, t in terms.items()]
    settings = [
        f"{name}.{argument}={value}"
        for name, term in terms.items()
        for argument, value in sorted(term.items())
        if argument not in ("_target_", "weight")
    ]
    return {"loss": " + ".join(names), "loss settings": " ".join(settings) or "-"}


def _fmt(value, digits: int = 3) -> str:
    """A table cell: ``-`` for a figure the run did not log, ``n/a`` for one it logged as NaN
    (not scored), as ``evaluate.py`` prints and the IoU plots label it."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return NOT_SCORED
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def run_row(client: MlflowClient, run: Run) -> dict[str, str]:
    """One table row from a run's params and metrics."""
    params, metrics = run.data.params, run.data.metrics
    seconds = [m.value for m in client.get_metric_history(run.info.run_id, metric_key("epoch_seconds"))]
    row = {
        "run": run.info.run_name or run.info.run_id[:8],
        "status": run.info.status,
        "model": _model_name(run),
        "encoder": params.get("model.encoder", "-"),
        **_loss_columns(params),
        "boundary w.": params.get("loss.boundary_weight", "-"),
        FINAL_MIOU: _fmt(metrics.get("val_miou")),
        BEST_MIOU: _fmt(metrics.get(metric_key("best_val_miou"))),
        "pixel acc.": _fmt(metrics.get("val_pixel_accuracy")),
        "best epoch": _fmt(int(metrics[BEST])) if BEST in metrics else "-",
        "epochs": str(len(seconds)) if seconds else params.get("trainer.epochs", "-"),
        "s/epoch": _fmt(statistics.median(seconds), 1) if seconds else "-",
        "params": f"{int(params['model.params']) / 1e6:.1f}M" if "model.params" in params else "-",
    }
    row.update({f"IoU {c}": _fmt(value) for c, value in sorted(class_iou(metrics).items())})
    return row


def markdown_table(rows: list[dict[str, str]]) -> str:
    """Rows as a markdown table (columns: the fixed ones, then every per-class IoU seen)."""
    columns = list(COLUMNS) + sorted({k for r in rows for k in r} - set(COLUMNS))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r.get(c, "-") for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_comparison(client: MlflowClient, runs: list[Run], rows: list[dict[str, str]], out: Path) -> list[Path]:
    """Grouped bars of per-class IoU (final weights; a class a run did not score has no bar and
    is labelled n/a, unlike an IoU of 0) and the val mIoU curves of every run."""
    classes = sorted({k[4:] for r in rows for k in r if k.startswith("IoU ")})
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(classes) * max(1, len(rows)) / 2), 4))
    width = 0.8 / max(1, len(rows))
    for index, row in enumerate(rows):
        cells = [row.get(f"IoU {c}", "-") for c in classes]
        positions = np.arange(len(classes)) + index * width
        axis.bar(positions, [0.0 if c in ("-", NOT_SCORED) else float(c) for c in cells], width, label=row["run"][:40])
        for position, cell in zip(positions, cells, strict=True):
            if cell == NOT_SCORED:
                axis.text(position, 0.01, NOT_SCORED, ha="center", va="bottom", rotation=90, fontsize=7)
    axis.set_xticks(np.arange(len(classes)) + width * (len(rows) - 1) / 2, classes, rotation=30)
    axis.set_ylabel("IoU (final weights)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    bars = out / "class_iou.png"
    figure.savefig(bars, dpi=100)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 4))
    for run, row in zip(runs, rows, strict=True):
        history = client.get_metric_history(run.info.run_id, "val_miou")
        axis.plot([m.step for m in history], [m.value for m in history], marker=".", label=row["run"][:40])
    axis.set_xlabel("epoch")
    axis.set_ylabel("val mIoU")
    axis.legend(fontsize=7)
    figure.tight_layout()
    curves = out / "val_miou_curves.png"
    figure.savefig(curves, dpi=100)
    plt.close(figure)
    return [bars, curves]


def write_comparison(client: MlflowClient, runs: list[Run], out: Path, title: str) -> list[Path]:
    """Write ``comparison.md`` and the two figures of ``runs`` to ``out``; returns the three files."""
    rows = [run_row(client, run) for run in runs]
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_comparison(client, runs, rows, out)
    table = markdown_table(rows)
    path = out / "comparison.md"
    path.write_text(f"# {title}\n\n{NOTE}\n\n{table}\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n")
    return [path, *plots]


def compare(tracking_uri: str, experiment: str, out: Path, sweep: str | None = None) -> Path:
    """Write ``comparison.md`` and the two figures to ``out``; returns the markdown file."""
    client = MlflowClient(tracking_uri)
    runs = find_runs(client, experiment, sweep)
    if not runs:
        raise ConfigError(f"no runs in experiment {experiment!r}{f' for sweep {sweep}' if sweep else ''}")
    return write_comparison(client, runs, out, experiment)[0]
