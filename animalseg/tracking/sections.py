"""Where each metric sits on MLflow's charts page: the part of its key before ``/`` is a section.

The headline metrics keep their plain keys, so ``val_miou`` is the same key on the charts page,
in ``mlflow.search_runs`` filters and in the Keras logs: ``val_miou``, ``val_pixel_accuracy``,
the losses, ``lr``, ``test_miou``. Everything per class, and the timings and the best epoch's
copies, goes into a section named after what it is: ``val_iou/<class>``, ``val_boundary_iou/``,
``val_dice/``, ``val_precision_recall/``, ``best/``, ``time/``. The training code keeps its flat
Keras keys; the keys change only on the way into MLflow, and everything that reads runs back
asks ``metric_key`` for the name.
"""

from __future__ import annotations

from collections.abc import Mapping

SPLITS = ("val_", "test_", "")
# (flat name's start after the split prefix, section, mean's flat name)
PER_CLASS = (
    ("boundary_iou_", "boundary_iou", "boundary_miou"),
    ("iou_", "iou", None),
    ("dice_", "dice", "mdice"),
    ("precision_", "precision_recall", "mprecision"),
    ("recall_", "precision_recall", "mrecall"),
)
BEST_EPOCH = "best_epoch"


def metric_key(name: str) -> str:
    """The MLflow key of the flat metric ``name`` (``val_iou_cat`` -> ``val_iou/cat``)."""
    if name == BEST_EPOCH:
        return "best/epoch"
    if name.startswith("best_"):
        return f"best/{name.removeprefix('best_')}"
    if name.endswith("_seconds"):
        return f"time/{name}"
    for split in SPLITS:
        if split and not name.startswith(split):
            continue
        rest = name.removeprefix(split)
        for start, section, mean in PER_CLASS:
            if rest == mean:
                return f"{split}{section}/{'mean' if section != 'precision_recall' else rest}"
            if rest.startswith(start):
                label = rest.removeprefix(start)
                label = label if section != "precision_recall" else f"{start}{label}"
                return f"{split}{section}/{label}"
    return name


def class_iou_key(class_name: str, split: str = "val") -> str:
    """The MLflow key of one class's IoU on ``split``."""
    return f"{split}_iou/{class_name}"


def class_iou(metrics: Mapping[str, float], split: str = "val") -> dict[str, float]:
    """The per-class IoUs among a run's MLflow ``metrics``, by class name (a store's runs logged
    with flat keys, ``val_iou_<class>``, read as well)."""
    found: dict[str, float] = {}
    for prefix in (f"{split}_iou/", f"{split}_iou_"):
        found.update({k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)})
    return found
