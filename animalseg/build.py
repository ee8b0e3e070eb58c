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
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.config import check_model_input
from animalseg.data.check import require_quick_check
from animalseg.data.module import DataModule
from animalseg.data.stats import resolve_class_weights
from animalseg.errors import ConfigError
from animalseg.inference import InferenceSettings
from animalseg.losses import ClassWeighted, SegmentationLoss
from animalseg.tracking.mlflow import MlflowTracker
from animalseg.training.callbacks import ResumeState, TrainingCallback, order_callbacks
from animalseg.training.encoder_rate import scale_encoder_rate
from animalseg.training.hardware import Hardware
from animalseg.training.schedules import Schedule
from animalseg.training.trainer import Trainer, TrainingJob


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


# optimizer.* keys of the project, not constructor arguments
OPTIMIZER_PROJECT_KEYS = ("encoder_lr_multiplier",)


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
        model = build_node(
            cfg.model,
            "model",
            keras.Model,
            num_classes=dataset.num_classes,
            class_names=dataset.class_names,
            class_colors=dataset.colors.tolist(),
        )
    model.inference = inference_settings(cfg).to_config()  # saved with every checkpoint
    check_model_input(cfg, model)
    distribution.prepare_model(model)
    weighted = class_weighted_terms(cfg.loss)  # before the train split is counted for the weights
    setting = cfg.loss.get("class_weights")
    if setting is not None and not weighted:
        raise ConfigError(
            f"loss.class_weights={setting}: no term of the loss weights classes "
            f"({', '.join(cfg.loss.terms)}); drop it or add a term that does (ce, focal)"
        )
    class_weights = resolve_class_weights(setting, dataset, cfg.paths.output_dir, data.base_size)
    loss = build_loss(cfg.loss, ignore_index=dataset.ignore_index, class_weights=class_weights)
    accumulate = int(cfg.trainer.get("accumulate_steps", 1))
    # Keras's schedules read the optimizer's batch counter (every batch, not every update), so
    # the schedule counts the batches of an epoch whatever the accumulation
    schedule = instantiate(cfg.schedule)(
        learning_rate=hardware.learning_rate(cfg.optimizer.learning_rate, data.batch_size * accumulate),
        steps_per_epoch=data.steps_per_epoch,
    )

    def optimizer(**arguments: Any) -> keras.optimizers.Optimizer:  # the trainer's and callbacks' arguments
        return instantiate_optimizer(cfg.optimizer, model.encoder, learning_rate=schedule.learning_rate, **arguments)

    tracker = instantiate(cfg.logger, **(tracker_args or {})) if distribution.is_chief else None
    job = TrainingJob(
        model=model,
        data=data,
        loss=loss,
        optimizer=optimizer,
        augmentation=instantiate(cfg.augmentation),
        callbacks=checked_callbacks([*instantiate_callbacks(cfg, tracker=tracker), *schedule.callbacks], loss),
        distribution=distribution,
        seed=cfg.seed,
        jit_compile=hardware.jit_compile,
    )
    return RunParts(cfg, hardware, job, schedule, build_trainer(cfg), tracker)


# what a Keras loss or layer takes from its base class: set by the run, not in a config
KERAS_BASE_ARGUMENTS = {"name", "dtype", "reduction"}


def build_node(node: DictConfig, key: str, kind: type, also: tuple[str, ...] = (), **available: Any) -> Any:
    """The object a ``_target_`` node describes, built by its own constructor (which checks its
    arguments), handed those of the run's objects in ``available`` that it takes and the node
    does not set: an argument the node leaves null (``model.num_classes: null``) counts as not
    set. Any problem is one ``ConfigError`` line naming ``key``, the config key the node sits at;
    ``kind`` is the class the result must be; ``also`` names keys the caller reads from the node
    (a loss term's ``weight``), listed with the arguments it takes. Written here rather than with Hydra's
    ``instantiate``, whose errors wrap the constructor's in a traceback naming the target, not
    the config key."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        raise ConfigError(f"{key}: needs a _target_ (the {kind.__name__} class to build)")
    try:
        built_class = get_class(target)
    except (ImportError, ValueError) as error:
        raise ConfigError(f"{key}._target_={target}: cannot import it ({error})") from None
    arguments = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "_target_"}
    accepted = constructor_arguments(built_class)
    unknown = [name for name in arguments if name not in accepted]
    if unknown:
        settable = sorted(accepted - set(available) - KERAS_BASE_ARGUMENTS | set(also))
        raise ConfigError(
            f"{key}.{unknown[0]}: {built_class.__name__} takes no argument {unknown[0]!r} "
            f"(it takes {', '.join(settable) or 'none'})"
        )
    arguments.update({k: v for k, v in available.items() if k in accepted and arguments.get(k) is None})
    try:
        built = built_class(**arguments)
    except (TypeError, ValueError) as error:
        message = str(error)
        argument = message.partition("=")[0]
        raise ConfigError(f"{key}.{message}" if argument in arguments else f"{key}: {message}") from None
    if not isinstance(built, kind):
        raise ConfigError(f"{key}: {target} is not a {kind.__module__}.{kind.__name__}")
    return built


def constructor_arguments(built_class: type) -> set[str]:
    """The keyword arguments ``built_class(...)`` takes: its own, and up its bases while a
    constructor passes ``**kwargs`` on (a Keras loss's ``name`` and ``dtype``)."""
    names: set[str] = set()
    for klass in built_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def class_weighted_terms(loss_cfg: DictConfig) -> list[str]:
    """The names of the terms under ``loss.terms`` whose class weights classes (``ClassWeighted``)."""
    names = []
    for name, node in (loss_cfg.get("terms") or {}).items():
        try:
            if issubclass(get_class(node._target_), ClassWeighted):
                names.append(name)
        except (ImportError, ValueError, AttributeError, TypeError):
            continue  # build_loss names the problem
    return names


def build_loss(loss_cfg: DictConfig, ignore_index: int, class_weights: list[float] | None) -> SegmentationLoss:
    """The ``loss`` group's objective: each ``loss.terms.<name>`` built by its own class (given the
    dataset's ``ignore_index`` and, when it weights classes, ``class_weights``) with its
    ``weight``, plus the boundary head's BCE."""
    terms = {}
    for name, node in (loss_cfg.get("terms") or {}).items():
        if node is None:  # loss.terms.<name>=null drops a term as ~loss.terms.<name> does
            continue
        key = f"loss.terms.{name}"
        if not isinstance(node, DictConfig):
            raise ConfigError(f"{key}={node!r}: must be a mapping with a _target_ (a keras.losses.Loss) and a weight")
        if "_target_" not in node:  # +loss.terms.focal.gamma=2 without the focal term
            raise ConfigError(
                f"{key}: sets no _target_, so no loss; add the term with loss={name} or 'loss=[ce,{name}]' "
                f"(or give +{key}._target_)"
            )
        weight = node.get("weight", 1.0)
        arguments = OmegaConf.masked_copy(node, [k for k in node if k != "weight"])
        term = build_node(
            arguments,
            key,
            keras.losses.Loss,
            also=("weight",),
            ignore_index=ignore_index,
            class_weights=class_weights,
            name=name,
        )
        terms[name] = (term, weight)
    try:
        return SegmentationLoss.from_terms(
            terms,
            boundary_weight=loss_cfg.get("boundary_weight", 1.0),
            boundary_pos_weight=loss_cfg.get("boundary_pos_weight", 1.0),
            ignore_index=ignore_index,
        )
    except ValueError as error:  # the objective's and the boundary BCE's arguments
        message = str(error)
        raise ConfigError(
            f"loss.boundary_{message}" if message.startswith("pos_weight=") else f"loss.{message}"
        ) from None


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


def checked_callbacks(callbacks: list[TrainingCallback], loss: SegmentationLoss) -> list[TrainingCallback]:
    """``callbacks``, once the stack the trainer will run (with its resume state) is known to be
    complete and each callback accepts ``loss``: refused here, before the run writes anything."""
    order_callbacks([*callbacks, ResumeState(callbacks)])
    for callback in callbacks:
        callback.check(loss)
    return callbacks


def build_trainer(cfg: DictConfig) -> Trainer:
    """The ``trainer`` group's Trainer."""
    return build_node(cfg.trainer, "trainer", Trainer)


def instantiate_callbacks(cfg: DictConfig, **available: Any) -> list[TrainingCallback]:
    """Every node under ``callbacks`` that has a ``_target_``, in config order, named by its key.
    A constructor parameter named like one of ``available`` (``tracker``) receives that object:
    the run's own parts that no YAML can hold."""
    callbacks: list[TrainingCallback] = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "_target_" not in node:  # +callbacks.ema.momentum=0.9 alone
            raise ConfigError(
                f"callbacks.{name}: sets no _target_, so no callback; add the option with "
                f"'callbacks=[default,{name}]' (or give +callbacks.{name}._target_)"
            )
        if not isinstance(node, DictConfig):
            continue
        callback = build_node(node, f"callbacks.{name}", TrainingCallback, **available)
        callback.name = name
        callbacks.append(callback)
    return callbacks
