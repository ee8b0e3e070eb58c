"""Framework tax: ``python scripts/bench_train.py model=unet data=animals data.crop_size=256``.

Takes train.py's Hydra overrides. On the same fixed in-memory batches, in one process,
interleaved, it times
- ``bare``: ``model.fit`` of the compiled model with no callbacks, and
- ``framework``: animalseg's ``Trainer.fit`` with its whole callback stack (NaN guard, full-val
  evaluation, checkpoints, resume state, MLflow logging into a temporary SQLite store),
each ``--repeats`` times (median reported), epoch 1 of every fit being warm-up (tracing). Training
images/s count the training steps only; the per-epoch work that is not the model (evaluation of
the whole val split, checkpoints, state, MLflow) is timed separately and reported per epoch and as
a fraction of a real epoch (``data.steps_per_epoch`` steps at the measured step time). It also
reports the model's training FLOP/s (3x the forward FLOPs, counted once by TensorFlow's profiler).
Prints a table, then one JSON line.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error


def forward_flops(model, crop: int) -> float:
    """Floating-point operations of one forward pass on one crop x crop image."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, crop, crop, 3], tf.float32)).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def make_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Training time per epoch (begin → last step) and the epoch-end work after it."""

        def __init__(self):
            super().__init__()
            self.train_seconds, self.work_seconds = [], []
            self._last_step = None

        def on_epoch_begin(self, epoch, logs=None):
            self._close()
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._last_step = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if self._last_step is None:  # bare fit: no batch hooks, so the epoch is all training
                self.train_seconds.append(time.perf_counter() - self._start)

        def on_train_end(self, logs=None):
            self._close()

        def _close(self):
            if self._last_step is not None:
                self.train_seconds.append(self._last_step - self._start)
                self.work_seconds.append(time.perf_counter() - self._last_step)
                self._last_step = None

    return StepTimer


@exit_on_user_error
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved bare/framework pairs (median)")
    args, overrides = parser.parse_known_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf
    from hydra.utils import instantiate

    from animalseg.config import check_model_input, validate_config
    from animalseg.data.boundary import boundary_target
    from animalseg.tracking.mlflow import MlflowTracker
    from animalseg.training.trainer import Trainer

    cfg = compose_from_argv(overrides)
    validate_config(cfg)
    hardware = instantiate(cfg.hardware)
    hardware.apply()
    keras.utils.set_random_seed(cfg.seed)
    distribution = hardware.distribution
    data = instantiate(cfg.data)
    dataset, crop, batch = data.dataset, data.crop_size, data.batch_size
    with distribution.scope():
        model = instantiate(cfg.model, num_classes=dataset.num_classes)
    check_model_input(cfg, model)
    distribution.prepare_model(model)
    loss = instantiate(cfg.loss, ignore_index=dataset.ignore_index)
    schedule = instantiate(cfg.schedule)(learning_rate=cfg.optimizer.learning_rate, steps_per_epoch=args.steps)

    def optimizer():
        return instantiate(cfg.optimizer, learning_rate=schedule.learning_rate)

    rng = np.random.default_rng(cfg.seed)
    images = rng.uniform(0, 255, (batch, crop, crop, 3)).astype("float32")
    masks = rng.integers(0, dataset.num_classes, (batch, crop, crop)).astype("int32")
    targets = {model.semantic_head: masks, model.boundary_head: tf.stack([boundary_target(m) for m in masks])}
    batches = tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2)
    real_steps = data.steps_per_epoch

    class InMemoryData(type(data)):
        """The configured data (val split, sizes), training on the fixed in-memory batches."""

        def __init__(self, base):
            self.__dict__.update(base.__dict__)

        @property
        def steps_per_epoch(self) -> int:
            return args.steps

        def train_data(self, *unused, **also_unused):
            return batches

    data = InMemoryData(data)
    for split in ("val",):  # warm the decode cache, as a real run's first epoch does
        for index in range(len(dataset.ids(split))):
            dataset.load(split, index)
    StepTimer = make_timer()

    bare_runs, framework_runs, work_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            timer = StepTimer()
            with distribution.scope():
                model.compile(optimizer=optimizer(), jit_compile=hardware.jit_compile, **loss.compile_kwargs())
            model.fit(batches, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=[timer], verbose=0)
            bare_runs.append(statistics.median(timer.train_seconds[1:]))

            timer = StepTimer()
            tracker = MlflowTracker(f"sqlite:///{tmp}/mlflow.db", "bench_train", run_name=f"repeat {repeat}")
            tracker.start()
            trainer = Trainer(epochs=args.epochs, verbose=0, num_examples=0)
            trainer.fit(
                model,
                loss,
                optimizer,
                data,
                instantiate(cfg.augmentation),
                model.output_stride,
                cfg.seed,
                Path(tmp) / f"run{repeat}",
                tracker,
                hardware.jit_compile,
                callbacks=[timer],
                distribution=distribution,
            )
            tracker.finish()
            framework_runs.append(statistics.median(timer.train_seconds[1:]))
            work_runs.append(statistics.median(timer.work_seconds[1:]))

    images_per_epoch = args.steps * batch
    bare = images_per_epoch / statistics.median(bare_runs)
    framework = images_per_epoch / statistics.median(framework_runs)
    step_seconds = statistics.median(framework_runs) / args.steps
    work = statistics.median(work_runs)
    flops = forward_flops(model, crop) if keras.backend.backend() == "tensorflow" else None
    result = {
        "model": model.name,
        "params": int(model.count_params()),
        "crop": crop,
        "batch": batch,
        "precision": hardware.precision,
        "backend": keras.backend.backend(),
        "jit_compile": hardware.jit_compile,
        "replicas": distribution.num_replicas,
        "framework_img_s": round(framework, 3),
        "bare_img_s": round(bare, 3),
        "ratio": round(framework / bare, 4),
        "epoch_work_s": round(work, 2),
        "epoch_work_fraction": round(work / (work + real_steps * step_seconds), 4),
        "real_steps_per_epoch": real_steps,
        "train_gflop_s": None if flops is None else round(3 * flops * framework / 1e9, 1),
        "forward_gflop_per_image": None if flops is None else round(flops / 1e9, 2),
        "bare_runs_s": [round(s, 3) for s in bare_runs],
        "framework_runs_s": [round(s, 3) for s in framework_runs],
    }
    print(
        f"{'model':<22}{'crop':>5}{'batch':>6}{'bare img/s':>12}{'framework':>11}{'ratio':>7}"
        f"{'epoch work s':>14}{'of epoch':>10}{'GFLOP/s':>9}"
    )
    print(
        f"{result['model']:<22}{crop:>5}{batch:>6}{result['bare_img_s']:>12}{result['framework_img_s']:>11}"
        f"{result['ratio']:>7}{result['epoch_work_s']:>14}{result['epoch_work_fraction']:>10.1%}"
        f"{result['train_gflop_s'] or '-'!s:>9}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
