"""Where an image goes before the model sees it: its long side scaled to the prediction size,
then padded to a multiple of the model's stride."""

from __future__ import annotations

import numpy as np
from keras import ops


def prediction_geometry(height, width, predict_size: int | None, stride: int) -> tuple:
    """(resized h, resized w, padded h, padded w) for an image of ``height`` x ``width``: the long
    side scaled to ``predict_size`` (rounded half to even), then padded up to a multiple of ``stride``.

    Python ints give ints; scalar int32 tensors (an exported graph, which learns the input size only
    when it runs) give tensors, so exported models compute the very same geometry. ``h * size / long``
    is one correctly rounded division, exact in float32 for any image under 32k pixels a side."""
    if predict_size is None:
        new_h, new_w = height, width
    else:
        longest = ops.cast(ops.maximum(height, width), "float32")

        def scaled(side):
            return ops.maximum(1, ops.cast(ops.round(ops.cast(side * predict_size, "float32") / longest), "int32"))

        new_h, new_w = scaled(height), scaled(width)
    geometry = (new_h, new_w, (new_h + stride - 1) // stride * stride, (new_w + stride - 1) // stride * stride)
    return tuple(int(v) for v in geometry) if isinstance(height, (int, np.integer)) else geometry
