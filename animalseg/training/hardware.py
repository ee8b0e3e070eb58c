"""How a run uses the machine: numeric precision, XLA, CPU threads and data parallelism (never
the science: ``data.batch_size`` is the global batch whatever the device count)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import keras
import tensorflow as tf
from hydra.core.hydra_config import HydraConfig

from animalseg.errors import ConfigError
from animalseg.training.distribution import Distribution

log = logging.getLogger(__name__)


@dataclass
class Hardware:
    """``precision`` is a Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``);
    heads and losses stay float32 under mixed precision. ``distribution`` (see
    ``animalseg.training.distribution``) spreads each global batch over replicas.

    ``lr_scaling`` relates the learning rate to the global batch: ``optimizer.learning_rate`` is
    the rate for ``reference_batch_size`` images per step; ``linear`` multiplies it by
    ``data.batch_size / reference_batch_size`` (Goyal et al. 2017, pair it with warm-up), ``sqrt``
    by the square root of that, ``none`` leaves it as is.

    ``requires_gpu``: the option is made for GPUs, so on a machine without one it stops with a
    ConfigError rather than train slowly with float16 emulated on the CPU (unless the distribution
    deliberately spreads over CPU devices). Other options run on CPUs as they can: float16 becomes
    float32, and XLA is off under ``tf.distribute`` (TensorFlow's XLA has no CPU collectives).
    """

    precision: str = "float32"
    jit_compile: bool = False
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    distribution: Distribution | None = None  # None: one device
    lr_scaling: str = "none"
    reference_batch_size: int = 8
    requires_gpu: bool = False

    def __post_init__(self) -> None:
        self.distribution = self.distribution or Distribution()

    def apply(self) -> None:
        """Set precision and threads, then start the distribution strategy (before any TF op)."""
        if not gpu_count():
            self._fit_to_cpu()
        keras.mixed_precision.set_global_policy(self.precision)
        if self.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
        if self.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
        self.distribution.setup()

    def _fit_to_cpu(self) -> None:
        """No GPU here: stop if the option needs one, else drop what only pays off (or only works) on
        a GPU, in one log line; before anything is written (no MLflow run, no checkpoints)."""
        option = hardware_option()
        if self.requires_gpu and not self.distribution.spreads_over_cpus:
            raise ConfigError(
                f"{option}: needs a GPU and none is visible on this machine; use hardware=cpu"
                f"{self.distribution.cpu_alternative}"
            )
        changes = []
        if self.precision == "mixed_float16":
            self.precision = "float32"
            changes.append("in float32")
        if self.jit_compile and not self.distribution.xla_on_cpu:
            self.jit_compile = False
            changes.append("without XLA")
        if changes:
            log.info("%s: no GPU on this worker; training on the CPU %s", option, " ".join(changes))

    def learning_rate(self, base: float, batch_size: int) -> float:
        """``base`` scaled to the global ``batch_size`` by ``lr_scaling``."""
        ratio = batch_size / self.reference_batch_size
        return float(base) * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]


def gpu_count() -> int:
    """GPUs the backend sees, without starting TensorFlow's runtime (logical CPUs are set after)."""
    if keras.backend.backend() == "tensorflow":
        return len(tf.config.list_physical_devices("GPU"))
    return sum(device.startswith("gpu") for device in keras.distribution.list_devices())


def hardware_option() -> str:
    """``hardware=<option>`` as composed by Hydra, to name it in messages."""
    if HydraConfig.initialized() and "hardware" in HydraConfig.get().runtime.choices:
        return f"hardware={HydraConfig.get().runtime.choices['hardware']}"
    return "hardware"
