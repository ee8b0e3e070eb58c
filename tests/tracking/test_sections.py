"""Metric keys on MLflow's charts page: the headline plain, the rest in sections."""

from __future__ import annotations

import pytest

from animalseg.tracking.sections import class_iou, metric_key, mlflow_metrics


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
        ("best_val_miou", "val_best/miou"),
        ("best_epoch", "val_best/epoch"),
        ("epoch_seconds", "val_time/epoch_seconds"),
        ("eval_seconds", "val_time/eval_seconds"),
    ],
)
def test_each_metric_has_its_section(flat, key):
    assert metric_key(flat) == key


def test_class_iou_reads_sectioned_and_flat_keys():
    assert class_iou({"val_iou/cat": 0.5, "val_iou_dog": 0.25, "val_miou": 0.4, "test_iou/cat": 0.1}) == {
        "cat": 0.5,
        "dog": 0.25,
    }


def test_the_headline_also_leads_in_a_section_of_its_own():
    keyed = mlflow_metrics({"val_miou": 0.5, "lr": 0.1, "val_iou_cat": 0.4})
    assert keyed == {"val_miou": 0.5, "lr": 0.1, "val_iou/cat": 0.4, "headline/val_miou": 0.5, "headline/lr": 0.1}
    # MLflow's charts page orders the sections alphabetically: the headline's comes first
    assert sorted({key.split("/")[0] for key in keyed if "/" in key})[0] == "headline"
    sections = {metric_key(k).split("/")[0] for k in ("best_val_miou", "epoch_seconds", "val_iou_cat", "val_dice_cat")}
    assert all(section > "headline" for section in sections)
