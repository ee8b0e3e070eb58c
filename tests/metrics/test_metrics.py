import numpy as np
import pytest

from animalseg.metrics.boundary import BoundaryIoU, boundary_distance, boundary_region
from animalseg.metrics.confusion import confusion_matrix, per_class_iou, segmentation_scores


def test_confusion_matrix_counts_and_skips_ignore():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    prediction = np.array([[0, 1, 1], [2, 2, 0]])
    confusion = confusion_matrix(target, prediction, num_classes=3)
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(confusion, expected)


def test_scores_by_hand():
    confusion = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    scores = segmentation_scores(confusion, ["bg", "a", "b"])
    # IoU: bg 1/(2+1-1)=0.5, a 1/(2+2-1)=1/3, b 1/(2+1-1)=0.5
    assert scores["iou_bg"] == pytest.approx(0.5)
    assert scores["iou_a"] == pytest.approx(1 / 3)
    assert scores["iou_b"] == pytest.approx(0.5)
    assert scores["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)


def test_absent_class_is_left_out_of_the_mean():
    # class 2 has no ground truth and is never predicted
    confusion = np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    iou = per_class_iou(confusion)
    assert np.isnan(iou[2])
    scores = segmentation_scores(confusion, ["bg", "a", "b"])
    assert scores["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)


def test_class_predicted_but_absent_counts_as_zero():
    confusion = np.array([[3, 0, 1], [0, 4, 0], [0, 0, 0]])
    scores = segmentation_scores(confusion, ["bg", "a", "b"])
    assert scores["iou_b"] == 0.0
    assert scores["miou"] == pytest.approx((3 / 4 + 1 + 0) / 3)


def test_target_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([5]), np.array([0]), num_classes=3)


def test_dice_precision_recall_by_hand():
    confusion = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])  # rows truth, columns prediction
    scores = segmentation_scores(confusion, ["bg", "a", "b"])
    # a: 1 hit, 2 predicted (col), 2 actual (row); b: 1 hit, 2 predicted, 1 actual
    assert scores["precision_a"] == pytest.approx(1 / 2) and scores["recall_a"] == pytest.approx(1 / 2)
    assert scores["precision_b"] == pytest.approx(1 / 2) and scores["recall_b"] == pytest.approx(1.0)
    assert scores["dice_b"] == pytest.approx(2 * 1 / (2 + 1))
    assert scores["dice_bg"] == pytest.approx(2 * 1 / (1 + 2))
    assert scores["mdice"] == pytest.approx((2 / 3 + 2 / 4 + 2 / 3) / 3)
    assert scores["mrecall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    for name in ("bg", "a", "b"):  # Dice = 2 IoU / (1 + IoU) from the same counts
        iou = scores[f"iou_{name}"]
        assert scores[f"dice_{name}"] == pytest.approx(2 * iou / (1 + iou))


def test_precision_and_recall_of_absent_and_unpredicted_classes():
    # b is predicted but absent (recall 0), a is present but never predicted (precision 0), c absent
    confusion = np.array([[3, 0, 1, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    scores = segmentation_scores(confusion, ["bg", "a", "b", "c"])
    assert scores["precision_a"] == 0.0 and scores["recall_b"] == 0.0
    assert np.isnan(scores["precision_c"]) and np.isnan(scores["dice_c"])
    assert scores["mprecision"] == pytest.approx((3 / 5 + 0 + 0) / 3)


def test_boundary_region_is_the_band_inside_the_contour():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    band = boundary_region(mask, 2)
    assert band.sum() == 100 - 36  # a 10x10 square minus its 6x6 core
    assert not band[~mask].any()
    full = np.ones((8, 8), bool)
    assert boundary_region(full, 1).sum() == 64 - 36  # the image border counts as contour


def test_boundary_iou_by_hand_and_ignores_void():
    target = np.zeros((40, 40), np.uint8)
    target[10:30, 10:30] = 1
    assert boundary_distance(40, 40) == 1  # round(0.02 * 56.6)
    metric = BoundaryIoU(2)
    metric.update(target, target)
    assert metric.scores(["bg", "a"])["boundary_miou"] == 1.0
    shifted = np.zeros_like(target)
    shifted[11:31, 10:30] = 1  # one row down: the 1-pixel bands of a overlap on the sides only
    metric = BoundaryIoU(2)
    metric.update(target, shifted)
    truth, predicted = boundary_region(target == 1, 1), boundary_region(shifted == 1, 1)
    expected = (truth & predicted).sum() / (truth | predicted).sum()
    assert metric.scores(["bg", "a"])["boundary_iou_a"] == pytest.approx(expected)
    assert 0 < expected < 1
    void = target.copy()
    void[:, 20:] = 255  # the prediction under void pixels is not scored
    metric = BoundaryIoU(2)
    metric.update(void, np.where(void == 255, 0, void))
    assert metric.scores(["bg", "a"])["boundary_iou_a"] == 1.0
