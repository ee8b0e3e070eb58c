"""How a run uses the machine: numeric precision, XLA, CPU threads and data parallelism (never
the science: ``data.batch_size`` is the global batch whatever the device count)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf

from animalseg.training.distribution import Distribution


@dataclass
class Hardware:
    """``precision`` is a Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``);
    heads and losses stay float32 under mixed precision. ``distribution`` (see
    ``animalseg.training.distribution``) spreads each global batch over replicas.

    ``lr_scaling`` relates the learning rate to the global batch: ``optimizer.learning_rate`` is
    the rate for ``reference_batch_size`` images per step; ``linear`` multiplies it by
    ``data.batch_size / reference_batch_size`` (Goyal et al. 2017, pair it with warm-up), ``sqrt``
    by the square root of that, ``none`` leaves it as is.
    """

    precision: str = "float32"
    jit_compile: bool = False
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    distribution: Distribution | None = None  # None: one device
    lr_scaling: str = "none"
    reference_batch_size: int = 8

    def __post_init__(self) -> None:
        self.distribution = self.distribution or Distribution()

    def apply(self) -> None:
        """Set precision and threads, then start the distribution strategy (before any TF op)."""
        keras.mixed_precision.set_global_policy(self.precision)
        if self.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
        if self.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
        self.distribution.setup()

    def learning_rate(self, base: float, batch_size: int) -> float:
        """``base`` scaled to the global ``batch_size`` by ``lr_scaling``."""
        ratio = batch_size / self.reference_batch_size
        return float(base) * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]
