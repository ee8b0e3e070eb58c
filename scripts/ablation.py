"""The factor ablation of issue 16: ``python scripts/ablation.py [--run all|ROW,ROW] [--epochs N]``.

Every row is the preset ``experiment=animals_cpu`` with ONE factor changed (the report's CPU row,
``ablation_cpu/efficientnet_unet``, is a row of its own), trained as its own MLflow run named after
the row in the experiment ``factor_ablation`` (``--experiment`` names another, e.g. for the rows
of a new preset beside the old ones), in ``outputs/<experiment>/<row>/`` (the same command
resumes a killed row; a finished one is not retrained). Without ``--run`` it prints every row's
command and exits. ``--epochs`` shortens every row alike (the schedules follow ``trainer.epochs``;
warmup_step's milestones are placed at 1/2 and 3/4 of it). Then:
``python scripts/compare_runs.py --experiment factor_ablation``. Last line: one JSON line with
each run row's final ``val_miou``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]
BASE = ["experiment=animals_cpu"]
PRESET_EPOCHS = 30  # conf/experiment/animals_cpu.yaml
EXPERIMENT = "factor_ablation"


def rows(epochs: int) -> dict[str, list[str]]:
    """Row name -> the overrides that make it (on top of ``BASE``)."""
    half, three_quarters = max(1, epochs // 2), max(1, 3 * epochs // 4)
    advanced_only = {  # augmentation=advanced with one op left on
        "rotation": ["augmentation.ops.1.p=0", "augmentation.ops.2.p=0"],
        "color_jitter": ["augmentation.ops.0.p=0", "augmentation.ops.2.p=0"],
        "elastic": ["augmentation.ops.0.p=0", "augmentation.ops.1.p=0"],
    }
    table: dict[str, list[str]] = {
        "preset": [],
        "report_cpu_row": ["experiment=ablation_cpu/efficientnet_unet"],
        **{
            f"resolution_{s}": [f"data.crop_size={s}", f"data.base_size={s}", f"data.eval_size={s}"]
            for s in (128, 256, 320)
        },
        "antialias": ["data.antialias=true"],
        # the loss rows keep the preset's boundary-loss weight: one factor changed at a time
        "loss_focal": ["loss=focal"],
        "loss_focal_a0.75_g3": ["loss=focal", "loss.terms.focal.alpha=0.75", "loss.terms.focal.gamma=3"],
        "loss_focal_a0.25_g2": ["loss=focal", "loss.terms.focal.alpha=0.25", "loss.terms.focal.gamma=2"],
        "loss_ce_dice": ["loss=[ce,dice]"],
        "augmentation_none": ["augmentation=none"],
        "augmentation_advanced": ["augmentation=advanced"],
        **{f"augmentation_{op}": ["augmentation=advanced", *ops] for op, ops in advanced_only.items()},
        "scale_range_0.5_1.5": ["augmentation.scale_range=[0.5,1.5]"],
        "no_flip": ["augmentation.hflip=false"],
        # the preset's class weights fade over 6 epochs: none at all, or held all run
        "class_weights_none": ["loss.class_weights=null", "~callbacks.class_weight_fade"],
        "class_weights_held": ["~callbacks.class_weight_fade"],
        "boundary_0": ["loss.boundary_weight=0.0"],
        "boundary_0.3": ["loss.boundary_weight=0.3"],
        "boundary_1.0": ["loss.boundary_weight=1.0"],
        "schedule_warmup_step": [
            "schedule=warmup_step",
            "schedule.warmup_epochs=1",
            f"schedule.milestones=[{half},{three_quarters}]",
        ],
        "schedule_cosine_hold": ["schedule=cosine_hold"],
        "schedule_poly": ["schedule=poly"],
        "schedule_onecycle": ["schedule=onecycle"],
        "schedule_constant": ["schedule=constant"],
        "lr_3e-4": ["optimizer.learning_rate=3e-4"],
        "lr_3e-3": ["optimizer.learning_rate=3e-3"],
        "encoder_lr_0.1": ["optimizer.encoder_lr_multiplier=0.1"],
        "batch_4": ["data.batch_size=4"],
        "batch_8": ["data.batch_size=8"],
        "batch_16": ["data.batch_size=16"],
        "freeze_encoder_2": ["model.freeze_encoder_epochs=2"],
        "bn_momentum_0.99": ["model.bn_momentum=0.99"],
        "encoder_bn_frozen": ["model.freeze_encoder_bn=true"],
        "decoder_half": ["model.decoder_channels=128"],  # the FPN's width (its segmentation branch has half)
        "decoder_double": ["model.decoder_channels=512"],
        "ema_off": ["~callbacks.ema"],
        "ema_0.99": ["callbacks.ema.momentum=0.99"],
        "encoder_lite0": ["model.encoder=EfficientNetLite0"],
        "encoder_lite1": ["model.encoder=EfficientNetLite1"],
        "encoder_lite2": ["model.encoder=EfficientNetLite2"],
        # every decoder on the preset's encoder, size and schedule (issue 35; the preset's is fpn)
        **{f"decoder_{d}": [f"model.decoder={d}"] for d in ("unet", "unetplusplus", "fpn", "deeplabv3plus")},
    }
    return table


def command(
    name: str, overrides: list[str], epochs: int | None, extra: list[str], experiment: str = EXPERIMENT
) -> list[str]:
    """``python train.py`` for one row, its own run folder and MLflow run name (a row that names
    its own experiment replaces the preset). ``extra`` changes the base every row starts from, so
    it comes before the row's own overrides: the row's factor is the one that wins."""
    base = [] if any(o.startswith("experiment=") for o in overrides) else BASE
    return [
        sys.executable,
        str(ROOT / "train.py"),
        *base,
        *extra,
        *overrides,
        *([f"trainer.epochs={epochs}"] if epochs else []),
        f"logger.experiment_name={experiment}",
        f"logger.run_name={name}",
        f"hydra.run.dir=outputs/{experiment}/{name}",
    ]


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="all, or comma-separated row names")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of every row (the preset's: {PRESET_EPOCHS})")
    parser.add_argument("--experiment", default=EXPERIMENT, help=f"the MLflow experiment (default {EXPERIMENT})")
    parser.add_argument(
        "overrides", nargs="*", help="train.py overrides of the base every row starts from (after --; the row's win)"
    )
    args = parser.parse_args(argv)
    table = rows(args.epochs or PRESET_EPOCHS)
    chosen = list(table) if args.run == "all" else [r for r in (args.run or "").split(",") if r]
    unknown = [r for r in chosen if r not in table]
    if unknown:
        print(f"error: --run: unknown rows {', '.join(unknown)}; rows: {', '.join(table)}", file=sys.stderr)
        return 2
    if not chosen:
        for name, overrides in table.items():
            printable = command(name, overrides, args.epochs, args.overrides, args.experiment)
            print(f"{name:<24} python train.py {shlex.join(printable[2:])}")
        return 0
    results = {}
    for name in chosen:
        print(f"== {name}", flush=True)
        completed = subprocess.run(command(name, table[name], args.epochs, args.overrides, args.experiment), cwd=ROOT)
        results[name] = completed.returncode
    print(f"Compare: python scripts/compare_runs.py --experiment {args.experiment}")
    print(json.dumps({"experiment": args.experiment, "exit_codes": results}))
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
