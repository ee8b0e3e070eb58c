"""The per-epoch evaluation's val losses: the same whatever the batching and on every pass (the
boundary targets of the val masks are made once and reused)."""

from __future__ import annotations

import pytest

from animalseg.data.synthetic import SyntheticDataset
from animalseg.inference import InferenceSettings
from animalseg.losses import SegmentationLoss, SparseCrossEntropy
from animalseg.models.unet import UNet
from animalseg.training.evaluation import Evaluator


def test_val_losses_do_not_depend_on_the_batching_or_the_pass():
    dataset = SyntheticDataset(image_size=32, train_size=2, val_size=5)
    model = UNet(dataset.num_classes, base_filters=4, depth=2)
    loss = SegmentationLoss.from_terms({"ce": (SparseCrossEntropy(), 1.0)}, boundary_weight=0.3)
    batched = Evaluator(dataset, "val", InferenceSettings(), batch_size=3)
    first, second = (batched.evaluate(model, loss).losses for _ in range(2))
    single = Evaluator(dataset, "val", InferenceSettings(), batch_size=1).evaluate(model, loss).losses
    assert first["boundary_logits_loss"] > 0
    for name, value in first.items():
        assert second[name] == pytest.approx(value, rel=1e-6) and single[name] == pytest.approx(value, rel=1e-5)


def test_the_splits_image_sizes_are_read_once_not_every_epoch():
    dataset = SyntheticDataset(image_size=32, train_size=2, val_size=5)
    model = UNet(dataset.num_classes, base_filters=4, depth=2)
    evaluator = Evaluator(dataset, "val", InferenceSettings(), batch_size=2)
    loads = []
    load = dataset.load
    dataset.load = lambda split, index: loads.append(index) or load(split, index)
    for _ in range(2):
        evaluator.evaluate(model)
    assert len(loads) == 5 + 2 * 5  # the sizes once, then each image once per pass
