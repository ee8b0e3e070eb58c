"""TensorFlow internals: the graph profiler that counts a model's floating-point operations."""

from __future__ import annotations

from typing import Any


def forward_flops(model: Any, size: int) -> float:
    """Floating-point operations of one forward pass of ``model`` on one size x size RGB image.

    TensorFlow's public API has no FLOP count; ``tensorflow.python.profiler`` (the TF1 profiler,
    still shipped) counts them from a traced graph's ops, which the benchmarks report."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32)).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(model_analyzer.profile(graph, options=options).total_float_ops)
