"""The two output heads every model ends with."""

from __future__ import annotations

import keras
from keras import layers

SEM_HEAD = "sem_logits"
BOUNDARY_HEAD = "boundary_logits"


def segmentation_heads(feature: keras.KerasTensor, num_classes: int) -> dict[str, keras.KerasTensor]:
    """1x1-conv heads on the last decoder feature, float32 even under mixed precision."""
    return {
        SEM_HEAD: layers.Conv2D(num_classes, 1, dtype="float32", name=SEM_HEAD)(feature),
        BOUNDARY_HEAD: layers.Conv2D(1, 1, dtype="float32", name=BOUNDARY_HEAD)(feature),
    }
