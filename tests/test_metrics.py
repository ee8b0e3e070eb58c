import numpy as np
import pytest

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
