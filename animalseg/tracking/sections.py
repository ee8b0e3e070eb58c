"""Where each metric sits on MLflow's charts page: the part of its key before ``/`` is a section.

MLflow's run page shows the '/' sections in alphabetical order and the plain keys after them
("Model metrics"), so the headline keeps its plain key, the same in searches, the API and the
Keras logs (``val_miou``, ``val_pixel_accuracy``, the losses, ``lr``, ``test_miou``), and is
logged once more under ``headline/``, the section that comes first. Everything per class, the
timings and the best epoch's copies go into sections named after what they are:
``val_iou/<class>``, ``val_boundary_iou/``, ``val_dice/``, ``val_precision_recall/``,
``val_best/``, ``val_time/``. The training code keeps its flat Keras keys; the keys change only
on the way into MLflow, and everything that reads runs back asks this module for the name.
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
HEADLINE = ("loss", "val_loss", "val_miou", "val_pixel_accuracy", "lr", "test_loss", "test_miou", "test_pixel_accuracy")
HEADLINE_SECTION = "headline"


def metric_key(name: str) -> str:
    """The MLflow key of the flat metric ``name`` (``val_iou_cat`` -> ``val_iou/cat``)."""
    if name == BEST_EPOCH:
        return "val_best/epoch"
    if name.startswith("best_"):
        return f"val_best/{name.removeprefix('best_').removeprefix('val_')}"
    if name.endswith("_seconds"):
        return f"val_time/{name}"
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


def mlflow_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` under their MLflow keys, the headline ones also under ``headline/``."""
    keyed = {metric_key(k): v for k, v in metrics.items()}
    keyed.update({f"{HEADLINE_SECTION}/{k}": v for k, v in metrics.items() if k in HEADLINE})
    return keyed


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
