"""Metric keys on MLflow's charts page: the headline plain, the rest in sections."""

from __future__ import annotations

import pytest

from animalseg.tracking.sections import class_iou, metric_key


@pytest.mark.parametrize(
    ("flat", "key"),
    [
        ("val_miou", "val_miou"),
        ("val_pixel_accuracy", "val_pixel_accuracy"),
        ("loss", "loss"),
        ("val_loss", "val_loss"),
        ("val_boundary_loss", "val_boundary_loss"),
        ("lr", "lr"),
        ("test_miou", "test_miou"),
        ("val_iou_cheetah", "val_iou/cheetah"),
        ("test_iou_cheetah", "test_iou/cheetah"),
        ("val_boundary_iou_fox", "val_boundary_iou/fox"),
        ("val_boundary_miou", "val_boundary_iou/mean"),
        ("val_dice_fox", "val_dice/fox"),
        ("val_mdice", "val_dice/mean"),
        ("val_precision_fox", "val_precision_recall/precision_fox"),
        ("val_recall_fox", "val_precision_recall/recall_fox"),
        ("val_mrecall", "val_precision_recall/mrecall"),
        ("best_val_miou", "best/val_miou"),
        ("best_epoch", "best/epoch"),
        ("epoch_seconds", "time/epoch_seconds"),
        ("eval_seconds", "time/eval_seconds"),
    ],
)
def test_each_metric_has_its_section(flat, key):
    assert metric_key(flat) == key


def test_class_iou_reads_sectioned_and_flat_keys():
    assert class_iou({"val_iou/cat": 0.5, "val_iou_dog": 0.25, "val_miou": 0.4, "test_iou/cat": 0.1}) == {
        "cat": 0.5,
        "dog": 0.25,
    }
