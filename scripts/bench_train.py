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

from animalseg.compat.tensorflow import forward_flops
from animalseg.scripting import compose_from_argv, exit_on_user_error


def make_timer():
    from animalseg.training.callbacks import TrainingCallback

    class StepTimer(TrainingCallback):
        """Training time per epoch (begin → last step) and the epoch-end work after it."""

        name = "step_timer"

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

    import dataclasses

    import keras
    import numpy as np
    import tensorflow as tf

    from animalseg.build import build_run
    from animalseg.config import validate_config
    from animalseg.data.boundary import boundary_target
    from animalseg.training.state import RunState

    class FixedBatches:
        """The configured data module (val split, sizes), training on fixed in-memory batches."""

        def __init__(self, data, batches, steps: int):
            self._data, self._batches, self.steps_per_epoch = data, batches, steps

        def __getattr__(self, name):
            return getattr(self._data, name)

        def train_data(self, *args, **kwargs):
            return self._batches

    bench_overrides = ["logger.experiment_name=bench_train", "trainer.verbose=0", "callbacks.evaluation.num_examples=0"]
    bare_runs, framework_runs, work_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_from_argv(
            [
                *overrides,
                *bench_overrides,
                f"logger.tracking_uri=sqlite:///{tmp}/mlflow.db",
                f"trainer.epochs={args.epochs}",
            ]
        )
        validate_config(cfg)
        parts = build_run(cfg)
        model, loss, hardware, job = parts.model, parts.job.loss, parts.hardware, parts.job
        dataset, crop, batch = parts.data.dataset, parts.data.crop_size, parts.data.batch_size
        rng = np.random.default_rng(cfg.seed)
        images = rng.uniform(0, 255, (batch, crop, crop, 3)).astype("float32")
        masks = rng.integers(0, dataset.num_classes, (batch, crop, crop)).astype("int32")
        targets = {model.semantic_head: masks, model.boundary_head: tf.stack([boundary_target(m) for m in masks])}
        batches = tf.data.Dataset.from_tensors((images, targets)).repeat().prefetch(2)
        real_steps = parts.data.steps_per_epoch
        for index in range(len(dataset.ids("val"))):  # warm the decode cache, as a real run's first epoch does
            dataset.load("val", index)
        StepTimer = make_timer()
        for repeat in range(args.repeats):
            timer = StepTimer()
            with job.distribution.scope():
                model.compile(
                    optimizer=job.optimizer(),
                    jit_compile=hardware.jit_compile,
                    **loss.compile_kwargs(model.semantic_head, model.boundary_head),
                )
            model.fit(batches, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=[timer], verbose=0)
            bare_runs.append(statistics.median(timer.train_seconds[1:]))

            timer = StepTimer()
            parts.tracker.start()
            timed = dataclasses.replace(
                job, data=FixedBatches(parts.data, batches, args.steps), callbacks=[*job.callbacks, timer]
            )
            parts.trainer.fit(timed, Path(tmp) / f"run{repeat}", RunState())
            parts.tracker.finish()
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
        "replicas": job.distribution.num_replicas,
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
