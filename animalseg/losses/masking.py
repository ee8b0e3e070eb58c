"""The reductions the custom losses here use: a mean over the pixels that count, and each
replica's share of a loss under ``tf.distribute``.

Under a ``tf.distribute`` strategy every replica computes the loss of its part of the global
batch and the gradients are summed over replicas. Keras divides each replica's loss by the
replica count, but only for losses whose ``call`` returns per-element values; these return a
reduced value, so the reduction happens here.
"""

from __future__ import annotations

import keras
from keras import ops


def _replica_context():
    """The ``tf.distribute`` replica context when a step runs on one of several replicas."""
    if keras.backend.backend() != "tensorflow":
        return None  # JAX's DataParallel computes losses on the global batch
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def sparse_log_probabilities(y_true, y_pred, ignore_index: int):
    """(labels with void pixels set to class 0, the valid-pixel mask, log-softmax of the logits in
    float32): what the per-pixel classification losses start from."""
    labels = ops.cast(y_true, "int32")
    valid = ops.not_equal(labels, ignore_index)
    return ops.where(valid, labels, 0), valid, ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)


def masked_mean(values, valid):
    """Mean of ``values`` where ``valid`` is true (0 when no pixel is valid). On a replica: its sum
    over the valid pixels of the whole global batch, so the replicas add up to the exact mean."""
    weights = ops.cast(valid, values.dtype)
    count = ops.sum(weights)
    context = _replica_context()
    if context is not None:
        count = context.all_reduce("sum", count)
    return ops.sum(values * weights) / ops.maximum(count, 1.0)


def replica_share(loss):
    """A loss over a batch (Dice, Tversky) divided by the replica count on a replica, so the summed
    gradients are those of the mean of the replicas' losses."""
    context = _replica_context()
    return loss if context is None else loss / context.num_replicas_in_sync
