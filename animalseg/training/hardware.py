"""How a run uses the machine: numeric precision, XLA and CPU threads (never the science)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass
class Hardware:
    """``precision`` is a Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``);
    heads and losses stay float32 under mixed precision."""

    precision: str = "float32"
    jit_compile: bool = False
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None

    def apply(self) -> None:
        keras.mixed_precision.set_global_policy(self.precision)
        if self.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
        if self.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
