"""The composition root: the one place that builds the parts of a run from a composed config.

``train.py`` (through ``run``), ``evaluate.py``, the benchmarks and the tests all build here, so
a new config group is wired once.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.config import check_model_input
from animalseg.data.check import require_quick_check
from animalseg.data.module import DataModule
from animalseg.data.stats import resolve_class_weights
from animalseg.errors import ConfigError
from animalseg.inference import InferenceSettings
from animalseg.losses.settings import FADE_KEY
from animalseg.tracking.mlflow import MlflowTracker
from animalseg.training.callbacks import ClassWeightFade, EarlyStopping, EmaWeights, TrainingCallback
from animalseg.training.encoder_rate import scale_encoder_rate
from animalseg.training.hardware import Hardware
from animalseg.training.schedules import Schedule
from animalseg.training.trainer import Trainer, TrainingJob

# trainer.* keys read by callbacks (trainer.num_examples, trainer.early_stopping), not by Trainer
TRAINER_LOOP_KEYS = ("_target_", "epochs", "monitor", "deterministic", "verbose")
# and trainer.accumulate_steps, read by the optimizer (gradient_accumulation_steps)


@dataclass
class RunParts:
    """Everything a run is made of; ``job`` is what the trainer fits."""

    cfg: DictConfig
    hardware: Hardware
    job: TrainingJob
    schedule: Schedule
    trainer: Trainer
    tracker: MlflowTracker | None

    @property
    def model(self) -> keras.Model:
        return self.job.model

    @property
    def data(self) -> DataModule:
        return self.job.data


# optimizer.* keys of the project, not constructor arguments (ema_recompute_bn configures callbacks.ema)
OPTIMIZER_PROJECT_KEYS = ("encoder_lr_multiplier", "ema_recompute_bn")


def instantiate_optimizer(
    optimizer_cfg: DictConfig, encoder: keras.layers.Layer | None = None, **kwargs: Any
) -> keras.optimizers.Optimizer:
    """An ``optimizer`` group node's Keras optimizer. ``encoder_lr_multiplier`` is the project's
    key, not a constructor argument: it scales ``encoder``'s rate when the encoder is given."""
    keras_keys = [key for key in optimizer_cfg if key not in OPTIMIZER_PROJECT_KEYS]
    optimizer = instantiate(OmegaConf.masked_copy(optimizer_cfg, keras_keys), **kwargs)
    if encoder is None:
        return optimizer
    return scale_encoder_rate(optimizer, encoder, optimizer_cfg.get("encoder_lr_multiplier", 1.0))


def accumulation(optimizer_cfg: DictConfig, steps: int) -> dict[str, Any]:
    """The optimizer arguments that average the gradients of ``steps`` batches per update.

    Keras moves the weight EMA after every batch, also between updates, when the weights do not
    change: the momentum is taken to the ``1/steps`` power so that the average spans as many
    updates as without accumulation."""
    if steps <= 1:
        return {}
    arguments: dict[str, Any] = {"gradient_accumulation_steps": steps}
    if optimizer_cfg.get("use_ema", False):
        arguments["ema_momentum"] = float(optimizer_cfg.get("ema_momentum", 0.99)) ** (1.0 / steps)
    return arguments


def build_data(data_cfg: DictConfig) -> DataModule:
    """A ``data`` group node's DataModule, its dataset checked for cheap problems."""
    data = DataModule.from_config(data_cfg)
    require_quick_check(data.source)
    return data


def build_run(cfg: DictConfig, tracker_args: dict[str, Any] | None = None) -> RunParts:
    """Set up the machine, then build data, model, loss, optimizer factory, schedule,
    augmentation, trainer, tracker (the chief's; ``tracker_args`` go to the ``logger`` group) and
    callbacks from ``cfg``. Nothing is written but caches."""
    hardware = instantiate(cfg.hardware)
    hardware.apply()
    distribution = hardware.distribution
    if cfg.data.batch_size % distribution.num_replicas:
        replicas, batch = distribution.num_replicas, cfg.data.batch_size
        raise ConfigError(
            f"data.batch_size={batch}: the global batch must split evenly over the {replicas} replicas; "
            f"e.g. data.batch_size={replicas * max(1, batch // replicas)}"
        )
    keras.utils.set_random_seed(cfg.seed)
    if cfg.trainer.deterministic:
        tf.config.experimental.enable_op_determinism()

    data = build_data(cfg.data)
    dataset = data.dataset
    declared = cfg.model.get("num_classes")
    if declared is not None and declared != dataset.num_classes:
        raise ConfigError(
            f"model.num_classes={declared}: the dataset has {dataset.num_classes} classes "
            f"({', '.join(dataset.class_names)}); remove the override or set it to {dataset.num_classes}"
        )
    with distribution.scope():
        model = instantiate(
            cfg.model,
            num_classes=dataset.num_classes,
            class_names=dataset.class_names,
            class_colors=dataset.colors.tolist(),
        )
    model.inference = inference_settings(cfg).to_config()  # saved with every checkpoint
    check_model_input(cfg, model)
    distribution.prepare_model(model)
    loss = instantiate(
        cfg.loss,
        ignore_index=dataset.ignore_index,
        class_weights=resolve_class_weights(
            cfg.loss.get("class_weights"), dataset, cfg.paths.output_dir, data.base_size
        ),
    )
    accumulate = int(cfg.trainer.get("accumulate_steps", 1))
    # Keras's schedules read the optimizer's batch counter (every batch, not every update), so
    # the schedule counts the batches of an epoch whatever the accumulation
    schedule = instantiate(cfg.schedule)(
        learning_rate=hardware.learning_rate(cfg.optimizer.learning_rate, data.batch_size * accumulate),
        steps_per_epoch=data.steps_per_epoch,
    )

    def optimizer() -> keras.optimizers.Optimizer:
        return instantiate_optimizer(
            cfg.optimizer,
            model.encoder,
            learning_rate=schedule.learning_rate,
            **accumulation(cfg.optimizer, accumulate),
        )

    tracker = instantiate(cfg.logger, **(tracker_args or {})) if distribution.is_chief else None
    job = TrainingJob(
        model=model,
        data=data,
        loss=loss,
        optimizer=optimizer,
        augmentation=instantiate(cfg.augmentation),
        callbacks=[*instantiate_callbacks(cfg, tracker=tracker), *schedule.callbacks],
        distribution=distribution,
        seed=cfg.seed,
        jit_compile=hardware.jit_compile,
    )
    return RunParts(cfg, hardware, job, schedule, build_trainer(cfg), tracker)


def inference_settings(cfg: DictConfig) -> InferenceSettings:
    """How the model predicts: the ``inference`` group with the ``tta`` group's views (a config
    without the group predicts at ``data.eval_size``, whole)."""
    node = cfg.get("inference")
    if node is None:
        settings = {"size": cfg.data.get("eval_size"), "antialias": bool(cfg.data.get("antialias", False))}
    else:
        settings = OmegaConf.to_container(node, resolve=True)
    tta = cfg.get("tta")
    return InferenceSettings.from_config({**settings, "tta": None if tta is None else OmegaConf.to_container(tta)})


def build_trainer(cfg: DictConfig) -> Trainer:
    """The ``trainer`` group's Trainer; its ``num_examples`` and ``early_stopping`` keys stay
    where users know them but configure callbacks (see ``instantiate_callbacks``)."""
    return instantiate(OmegaConf.masked_copy(cfg.trainer, list(TRAINER_LOOP_KEYS)))


def instantiate_callbacks(cfg: DictConfig, **available: Any) -> list[TrainingCallback]:
    """Every node under ``callbacks`` that has a ``_target_``, in config order, named by its key
    (``trainer.early_stopping`` adds one more, ``optimizer.use_ema=true`` adds ``ema``, set by
    ``optimizer.ema_recompute_bn``, ``loss.class_weight_epochs`` adds ``class_weight_fade``). A
    constructor parameter named like
    one of ``available`` (``tracker``) receives that object: the run's own parts that no YAML can
    hold."""
    callbacks: list[TrainingCallback] = []
    nodes = dict(cfg.get("callbacks") or {})
    if cfg.trainer.get("early_stopping") and "early_stopping" not in nodes:
        nodes["early_stopping"] = OmegaConf.create(
            {
                "_target_": f"{EarlyStopping.__module__}.EarlyStopping",
                "monitor": cfg.trainer.monitor,
                **cfg.trainer.early_stopping,
            }
        )
    fade = cfg.get("loss", {}).get(FADE_KEY)
    if fade is not None and "class_weight_fade" not in nodes:
        nodes["class_weight_fade"] = OmegaConf.create(
            {"_target_": f"{ClassWeightFade.__module__}.ClassWeightFade", "epochs": fade}
        )
    optimizer = cfg.get("optimizer", {})
    use_ema = bool(optimizer.get("use_ema", False))
    if use_ema and "ema" not in nodes:
        nodes["ema"] = OmegaConf.create(
            {
                "_target_": f"{EmaWeights.__module__}.EmaWeights",
                "recompute_bn": optimizer.get("ema_recompute_bn", False),
            }
        )
    for name, node in nodes.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        try:
            accepted = inspect.signature(get_class(node._target_)).parameters
            callback = instantiate(node, **{k: v for k, v in available.items() if k in accepted})
        except (InstantiationException, ImportError, ValueError, TypeError) as error:
            raise ConfigError(f"callbacks.{name}: cannot build {node._target_} ({error})") from None
        if not isinstance(callback, TrainingCallback):
            raise ConfigError(
                f"callbacks.{name}: {node._target_} is not an animalseg.training.callbacks.TrainingCallback"
            )
        callback.name = name
        callbacks.append(callback)
    if not use_ema and any(isinstance(c, EmaWeights) for c in callbacks):
        raise ConfigError("callbacks.ema: swaps in the optimizer's weight EMA; set optimizer.use_ema=true or drop it")
    return callbacks
