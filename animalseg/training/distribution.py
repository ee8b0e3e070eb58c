"""Data-parallel training on engines that exist: ``tf.distribute`` strategies, and
``keras.distribution.DataParallel`` on the JAX backend. No cluster code of our own.

The ``hardware.distribution`` config entry is one of these classes (``null`` = one device).
``data.batch_size`` is always the global batch: each of ``num_replicas`` replicas trains on
``batch_size / num_replicas`` images of every step and the gradients are averaged, so a step is
the same step as on one device (with ``sync_batchnorm``, batch statistics too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from animalseg.errors import ConfigError
from animalseg.models.blocks import batchnorm_layers


class Distribution:
    """One device: the default when ``hardware.distribution`` is null."""

    sync_batchnorm = False
    # Without a GPU: how to run this option on the CPU instead (after "use hardware=cpu").
    cpu_alternative = ""

    @property
    def spreads_over_cpus(self) -> bool:
        """Whether the config asks for several CPU devices, so a missing GPU is no error."""
        return False

    @property
    def xla_on_cpu(self) -> bool:
        """Whether XLA compiles this distribution's train step on CPUs."""
        return True

    def setup(self) -> None:
        """Create the strategy; runs before TensorFlow's runtime starts (``Hardware.apply``)."""

    def scope(self) -> contextlib.AbstractContextManager:
        """Where models and optimizers are created and trained."""
        return contextlib.nullcontext()

    @property
    def num_replicas(self) -> int:
        """Model copies that share each global batch."""
        return 1

    @property
    def is_chief(self) -> bool:
        """The one process that logs to MLflow and writes checkpoints."""
        return True

    @property
    def worker(self) -> str:
        """This process's name in the cluster, for log lines."""
        return "chief"

    def agree(self, text: str) -> bool:
        """Whether every worker passed the same ``text`` (a barrier on multi-worker runs)."""
        return True

    def chief_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The chief's ``metrics`` on every worker, so decisions taken on them (early stopping,
        plateau, best epoch) are the same everywhere even if a worker's own numbers differ in the
        last bit (another GPU model, another reduction order)."""
        return metrics

    def prepare_model(self, model: keras.Model) -> None:
        """Synchronise batch statistics across replicas when ``sync_batchnorm`` is set: with a
        per-replica batch of 2-4 crops, per-replica statistics are too noisy for segmentation."""
        if self.sync_batchnorm and self.num_replicas > 1 and keras.backend.backend() == "tensorflow":
            for layer in batchnorm_layers(model):  # (JAX's DataParallel computes them globally)
                layer.synchronized = True  # read when the train step is traced, i.e. at fit


class _TensorFlowStrategy(Distribution):
    """Shared by the ``tf.distribute`` strategies."""

    def __init__(self, sync_batchnorm: bool = True):
        self.sync_batchnorm = bool(sync_batchnorm)
        self.strategy = None
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # not a line per all-reduce

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope()

    @property
    def xla_on_cpu(self) -> bool:
        """Not on TensorFlow: "Collectives are not yet implemented for CPU devices when compiling
        with XLA" (then a crash); JAX's DataParallel has them."""
        return keras.backend.backend() != "tensorflow"

    @property
    def num_replicas(self) -> int:
        """Model copies that share each global batch."""
        return int(self.strategy.num_replicas_in_sync)

    def _require_tensorflow(self, option: str) -> None:
        if keras.backend.backend() != "tensorflow":
            raise ConfigError(
                f"hardware={option}: tf.distribute needs the TensorFlow backend, not KERAS_BACKEND="
                f"{keras.backend.backend()}" + ("; use hardware=multi_gpu on JAX" if option == "multi_worker" else "")
            )


class Mirrored(_TensorFlowStrategy):
    """Several devices of one machine: ``tf.distribute.MirroredStrategy`` (TensorFlow) or
    ``keras.distribution.DataParallel`` (JAX), over ``devices`` or every visible GPU.

    ``logical_cpus`` splits the CPU into that many logical devices to mirror over: a way to run
    the data-parallel code path on a machine without GPUs (TensorFlow only; not faster).
    """

    cpu_alternative = ", or hardware.distribution.logical_cpus=2 to run the data-parallel code on the CPU"

    def __init__(self, devices: list[str] | None = None, logical_cpus: int | None = None, sync_batchnorm: bool = True):
        super().__init__(sync_batchnorm)
        self.devices = list(devices) if devices else None
        self.logical_cpus = logical_cpus
        self.data_parallel = None

    @property
    def spreads_over_cpus(self) -> bool:
        """``logical_cpus``, or on JAX several CPU devices (``--xla_force_host_platform_device_count``)."""
        if keras.backend.backend() == "jax":
            return len(keras.distribution.list_devices()) > 1
        return bool(self.logical_cpus)

    def setup(self) -> None:
        if keras.backend.backend() == "jax":
            self._setup_jax()
            return
        self._require_tensorflow("multi_gpu")
        devices = self.devices
        if self.logical_cpus:
            cpu = tf.config.list_physical_devices("CPU")[0]
            with contextlib.suppress(RuntimeError):  # TensorFlow already started: checked below
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * int(self.logical_cpus)
                )
            cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
            if len(cpus) != self.logical_cpus:
                raise ConfigError(
                    f"hardware.distribution.logical_cpus={self.logical_cpus}: TensorFlow had already started "
                    f"with {len(cpus)} CPU device(s) in this process"
                )
            devices = devices or cpus
        self.strategy = tf.distribute.MirroredStrategy(devices)

    def _setup_jax(self) -> None:
        if self.logical_cpus:
            raise ConfigError(
                "hardware.distribution.logical_cpus: TensorFlow only; on JAX set "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N before starting Python"
            )
        devices = self.devices or keras.distribution.list_devices()  # the accelerators, else the CPUs
        self.data_parallel = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(self.data_parallel)

    def scope(self) -> contextlib.AbstractContextManager:
        return self.data_parallel.scope() if self.data_parallel is not None else super().scope()

    @property
    def num_replicas(self) -> int:
        if self.data_parallel is not None:
            return int(np.prod(self.data_parallel.device_mesh.shape))
        return super().num_replicas


class MultiWorker(_TensorFlowStrategy):
    """Several machines (or processes): ``tf.distribute.MultiWorkerMirroredStrategy``. Every worker
    runs the same command with the same ``hydra.run.dir`` on storage they all see; only the chief
    logs to MLflow and writes checkpoints, and every worker resumes from the chief's.

    ``cluster``: ``tf_config`` reads the cluster from ``TF_CONFIG``; ``slurm`` from the SLURM job
    step's environment (one task per worker, e.g. ``hydra/launcher=slurm
    hydra.launcher.nodes=2``), workers listening on ``port_base`` + their task index on the node.
    ``communication``: ``auto``, ``ring`` or ``nccl``; ``timeout_seconds``: how long a collective
    waits for a lost worker (null = forever).
    """

    CLUSTERS: ClassVar[tuple[str, ...]] = ("tf_config", "slurm")
    COMMUNICATIONS: ClassVar[dict] = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }

    def __init__(
        self,
        cluster: str = "tf_config",
        port_base: int = 8888,
        communication: str = "auto",
        timeout_seconds: float | None = None,
        sync_batchnorm: bool = True,
    ):
        super().__init__(sync_batchnorm)
        self.cluster = cluster
        self.port_base = int(port_base)
        self.communication = communication
        self.timeout_seconds = timeout_seconds
        self.resolver = None
        self._is_chief = True

    def setup(self) -> None:
        self._require_tensorflow("multi_worker")
        for key, value, allowed in (
            ("cluster", self.cluster, self.CLUSTERS),
            ("communication", self.communication, tuple(self.COMMUNICATIONS)),
        ):
            if value not in allowed:
                raise ConfigError(f"hardware.distribution.{key}={value!r}: must be one of {', '.join(allowed)}")
        if self.cluster == "tf_config":
            read_tf_config()
            self.resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        elif "SLURM_PROCID" not in os.environ:
            raise ConfigError("hardware.distribution.cluster=slurm: not inside a SLURM job step (no SLURM_PROCID)")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=self.COMMUNICATIONS[self.communication], timeout_seconds=self.timeout_seconds
        )
        try:
            if self.cluster == "slurm":  # also gives each task its share of the node's GPUs
                self.resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=self.port_base)
            self.strategy = _KerasMultiWorkerStrategy(cluster_resolver=self.resolver, communication_options=options)
        except (RuntimeError, ValueError, OSError) as error:  # OSError: no nvidia-smi
            if self.cluster != "slurm":
                raise
            raise ConfigError(
                f"hardware.distribution.cluster=slurm: TensorFlow's SlurmClusterResolver cannot place the tasks "
                f"({error}); it needs at least one GPU per task: on CPU-only nodes use cluster=tf_config"
            ) from None
        task_type, task_id = self.resolver.task_type, self.resolver.task_id
        jobs = self.resolver.cluster_spec().as_dict()
        self._is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in jobs)

    @property
    def is_chief(self) -> bool:
        """The ``chief`` task, or worker 0 when the cluster has no chief (TensorFlow's rule)."""
        return self._is_chief

    @property
    def worker(self) -> str:
        """``chief`` or ``<task type> <index>``."""
        return "chief" if self.is_chief else f"{self.resolver.task_type} {self.resolver.task_id}"

    def _gather(self, row: np.ndarray) -> np.ndarray:
        """Every worker's ``row`` (1-D float64 or int64), one row per replica."""
        local = self.strategy.experimental_distribute_values_from_function(lambda _: tf.constant(row[None]))
        return self.strategy.gather(local, axis=0).numpy()

    def agree(self, text: str) -> bool:
        """Whether every worker passed the same ``text`` (a barrier: waits for all of them)."""
        digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)
        return bool(np.all(self._gather(np.array([digest], np.int64)) == digest))

    def chief_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The chief's ``metrics`` on every worker (all workers have the same keys)."""
        keys = sorted(metrics)
        rows = self._gather(np.array([float(self.is_chief)] + [metrics[k] for k in keys], np.float64))
        chief = rows[rows[:, 0] == 1.0][0]
        return {key: float(value) for key, value in zip(keys, chief[1:], strict=True)}


class _KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose ``reduce`` takes what Keras 3's ``fit`` passes it (Keras 3
    does not run on this strategy as is, keras-team/keras#20585): a nested batch (the symbolic
    build before the first step) and scalar logs with ``axis=0`` (each epoch's metrics)."""

    def reduce(self, reduce_op, value, axis):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda leaf: self.reduce(reduce_op, leaf, axis), value)
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def read_tf_config() -> dict:
    """``TF_CONFIG`` as a dict, or a ConfigError that says what is missing."""
    raw = os.environ.get("TF_CONFIG")
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not raw:
        raise ConfigError(f"hardware=multi_worker: set TF_CONFIG on every worker, e.g. TF_CONFIG='{example}'")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}); e.g. TF_CONFIG='{example}'") from None
    task = config.get("task", {}) if isinstance(config, dict) else {}
    cluster = config.get("cluster", {}) if isinstance(config, dict) else {}
    if task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise ConfigError(
            f"TF_CONFIG: task {task or '(missing)'} is not one of the cluster's jobs {sorted(cluster)}; e.g. {example}"
        )
    if task["index"] >= len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG: task index {task['index']} but the cluster has {len(cluster[task['type']])}")
    return config


def batch_predictor(model: keras.Model) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``model.predict_on_batch``, except under a ``tf.distribute`` strategy with several replicas,
    where predict_on_batch hands every replica the whole batch and returns their copies
    concatenated (and ``predict`` fails on batches smaller than the replica count): there, one
    compiled forward pass with this worker's copy of the weights, without collectives, so each
    worker evaluates on its own."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return model.predict_on_batch
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: {k: v.numpy() for k, v in forward(x).items()}
