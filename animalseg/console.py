"""What the console shows: the run's own lines, and library noise only when asked for.

The entry points compose and validate the config before anything imports TensorFlow, Keras or
MLflow (6-9 s on a 2-core machine), so ``--help`` and a config error answer at once; then
``quiet_libraries`` silences, at their source, the lines a CPU run does not need to see.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

VERBOSE_ENV = "ANIMALSEG_VERBOSE"


def verbose_requested(setting: object = False) -> bool:
    """``verbose=true`` in the config, or ``ANIMALSEG_VERBOSE=1`` in the environment."""
    return bool(setting) or os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: C++ code writes there directly, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_libraries(verbose: bool = False) -> None:
    """Silence what TensorFlow, absl, CUDA probing and MLflow print on a CPU machine, unless
    ``verbose``. Call before the first import of TensorFlow; a second call does nothing more."""
    if verbose:
        return
    # C++ info, warning and error lines: "failed call to cuInit" is logged as an error on every
    # machine without a GPU, although TensorFlow then runs on the CPU as intended.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # absl writes "All log messages before absl::InitializeLog()" and "Could not find cuda
    # drivers" while TensorFlow loads, before TF_CPP_MIN_LOG_LEVEL is read; only the file
    # descriptor can hide them. A failed import still raises here, after stderr is back.
    if "tensorflow" not in sys.modules:
        with _stderr_to_devnull():
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe of the first device query prints too
    quiet_mlflow()


def quiet_mlflow() -> None:
    """Silence MLflow's notes, INFO lines and download bars (what a script that reads runs and no
    model needs, without importing TensorFlow). Call before the first import of MLflow."""
    # A local dataset path matches two equivalent MLflow source types; either one is right.
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
    # The packaged model lists its code files; MLflow's CloudPickle note is about other models.
    # MLflow gives it as a warning or, in newer versions, as a WARNING line of its pyfunc logger.
    warnings.filterwarnings("ignore", message=".*[Cc]loud[Pp]ickle")
    logging.getLogger("mlflow.pyfunc").addFilter(_without("CloudPickle"))
    # "Creating initial MLflow database tables" on every new store, and other INFO lines: MLflow
    # sets its loggers' level from this variable when it is imported.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Download bars when an artifact is fetched (a checkpoint for evaluate.py or predict.py).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _without(text: str) -> logging.Filter:
    """A logging filter that drops the records whose message contains ``text``."""
    drop = logging.Filter()
    drop.filter = lambda record: text not in record.getMessage()  # type: ignore[method-assign]
    return drop


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
