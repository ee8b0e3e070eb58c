"""The one reduction every custom loss here uses: a mean over the pixels that count."""

from __future__ import annotations

from keras import ops


def masked_mean(values, valid):
    """Mean of ``values`` where ``valid`` is true (0 when no pixel is valid)."""
    weights = ops.cast(valid, values.dtype)
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)
