"""What the thin entry points call: errors the user can fix are printed, not raised."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import string
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from animalseg.config import moved_key_problems
from animalseg.console import quiet_libraries, verbose_requested
from animalseg.errors import AnimalsegError, ConfigError
from animalseg.paths import project_root, require_writable

EXIT_JOB_FAILED = 1  # a multirun in which a job failed
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT
_task_started = False
_job_error: str | None = None  # what report_errors printed for the sweep job under way
_open_sweep: DictConfig | None = None  # this process's multirun, until its study is closed
_sweep_failed = False


def report_errors(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Wrap a Hydra task: an ``AnimalsegError`` prints one line per problem and exits with its
    code (2 for config and data, 1 for training); in a multirun the job is reported, recorded as
    failed (``StudyParentRun``) and the sweep goes on. Ctrl-C or SIGTERM (a KeyboardInterrupt;
    a training run has said how to resume) exits with 130, a sweep included.
    ``HYDRA_FULL_ERROR=1`` re-raises with the traceback."""

    def wrapped(cfg: DictConfig) -> object:
        global _task_started, _job_error
        _task_started = True
        try:
            return task(cfg)
        except AnimalsegError as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            for problem in error.problems:
                print(f"error: {problem}", file=sys.stderr)
            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                _job_error = "; ".join(error.problems)
                return None
            discard_unused_run_dir()
            raise SystemExit(error.exit_code) from None
        except KeyboardInterrupt:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(EXIT_INTERRUPTED) from None

    return wrapped


def discard_unused_run_dir() -> None:
    """Remove the folder Hydra made for a run that stopped before writing anything (a config or
    data error): only its ``.hydra`` and log file go, and the folder if that leaves it empty."""
    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    directory = Path(hydra.runtime.output_dir)
    made_by_hydra = {directory / ".hydra", directory / f"{hydra.job.name}.log"}
    if not directory.is_dir() or any(path not in made_by_hydra for path in directory.iterdir()):
        return
    shutil.rmtree(directory / ".hydra", ignore_errors=True)
    (directory / f"{hydra.job.name}.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something else appeared meanwhile: keep it
        directory.rmdir()


def heavy_task(target: str, validate: Callable[[DictConfig], None] | None = None) -> Callable[[DictConfig], object]:
    """The task ``module:function``, imported only when a job runs: ``--help``, ``--cfg job`` and
    a config error (``validate``, run first) answer before TensorFlow, Keras and MLflow load."""
    module_name, _, function_name = target.partition(":")

    def task(cfg: DictConfig) -> object:
        if validate is not None:
            validate(cfg)
        quiet_libraries(verbose_requested(cfg.get("verbose")))
        return getattr(importlib.import_module(module_name), function_name)(cfg)

    return task


def app_help(config_name: str) -> str:
    """The app's ``--help`` from ``conf/hydra/help/<config_name>.yaml``, with the config groups
    and their options read from the ``conf/`` folders. Hydra's own ``--help`` renders the same
    template but builds a config repository per group to list them, 3-4 s of CPU here."""
    conf = Path(project_root()) / "conf"
    help_cfg = OmegaConf.load(conf / "hydra" / "help" / f"{config_name}.yaml")
    groups = sorted(
        (str(folder.relative_to(conf)), sorted(p.stem for p in folder.glob("*.yaml")))
        for folder in conf.rglob("*")
        if folder.is_dir() and folder.parts[len(conf.parts)] != "hydra" and any(folder.glob("*.yaml"))
    )
    listing = "\n".join(f"{group}: {', '.join(options)}" for group, options in groups)
    template = OmegaConf.create({"hydra": {"help": help_cfg}}).hydra.help.template
    return string.Template(template).safe_substitute(APP_CONFIG_GROUPS=listing)


def main_with_usage_exit(main: Callable[[], object], config_name: str | None = None) -> None:
    """Run a ``hydra.main`` function; ``--help`` prints the app's help of ``config_name``. A bad
    command line (unknown option or key, which Hydra reports itself before any task runs) exits
    with 2 like every other config error. A multirun in which a job failed exits with 1; its study
    is closed also when the sweeper stops on a job's error (Hydra then skips the multirun's end
    hook)."""
    # conf/hydra/launcher/joblib.yaml is checked against the plugin's schema of the same name,
    # on purpose (typos in it fail); Hydra warns about that matching on every sweep.
    warnings.filterwarnings("ignore", message="(?s).*is validated against ConfigStore schema with the same name")
    if config_name is not None and {"-h", "--help"} & set(sys.argv[1:]):
        print(app_help(config_name))
        raise SystemExit(0)
    moved = moved_key_problems(argument.partition("=")[0] for argument in sys.argv[1:])
    if moved:  # before Hydra, which would call the key unknown
        for problem in moved:
            print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    try:
        main()
    except SystemExit as exit_:
        _close_sweep_after_error(interrupted=exit_.code == EXIT_INTERRUPTED)
        if exit_.code == 1 and not _task_started and not _sweep_failed:
            raise SystemExit(EXIT_USAGE) from None
        raise
    except BaseException as error:  # HYDRA_FULL_ERROR=1: Hydra re-raises the error itself
        _close_sweep_after_error(interrupted=isinstance(error, KeyboardInterrupt))
        raise
    if _sweep_failed:
        raise SystemExit(EXIT_JOB_FAILED)


class OutputDirCheck(Callback):
    """Hydra callback: an output folder that cannot be written is one clear line and exit 2,
    before Hydra itself fails to create it with a traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _require_writable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _require_writable(config.hydra.sweep.dir, "hydra.sweep.dir")


class TrackingStoreSetup(Callback):
    """Hydra callback: before a sweep's jobs start (maybe in parallel), create the MLflow store
    and experiment once, so concurrent jobs do not race to create them."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if "logger" in config:
            quiet_libraries(verbose_requested(config.get("verbose")))
            instantiate(config.logger).prepare()


class StudyParentRun(Callback):
    """Hydra callback: a multirun is one MLflow parent run with its jobs as children, summarised
    as each job ends and completed at the end (animalseg/tracking/study.py). Each job records
    its outcome in the sweep folder from its own process, so a job that fails before its MLflow
    run exists is a failed child too. The same command with the same ``hydra.sweep.dir``
    reopens the parent of a killed or failed sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        global _open_sweep, _sweep_failed
        _open_sweep, _sweep_failed = config, False
        if "logger" not in config:
            return
        from animalseg.tracking.naming import parent_name, swept_keys, write_swept
        from animalseg.tracking.study import open_parent

        sweep_dir = Path(config.hydra.sweep.dir)
        swept = swept_keys(config.hydra.overrides.task, config.hydra.sweeper.get("params"))
        write_swept(sweep_dir, swept)
        name = config.logger.get("run_name") or parent_name(config.hydra.runtime.choices, swept)
        open_parent(instantiate(config.logger), sweep_dir, name, shared_params(config, swept), swept)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        global _job_error
        _job_error = None
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            from animalseg.tracking.study import RUNNING

            _record_job(config, RUNNING)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        from animalseg.tracking.study import COMPLETED, FAILED

        error = _job_error
        if job_return.status == JobStatus.FAILED:  # the property would raise the job's exception
            error = _one_line(job_return._return_value)
        _record_job(config, FAILED if error else COMPLETED, error or "")
        if "logger" in config:
            _summarize(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _close_sweep()


def shared_params(config: DictConfig, swept: list[str]) -> dict[str, object]:
    """The params every job of a sweep shares: the composed config without the swept keys (a
    swept group's keys included) and without Hydra's own node."""
    from animalseg.tracking.mlflow import flatten

    body = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        values = OmegaConf.to_container(body, resolve=True)
    except Exception:  # a value that only a job can resolve: the raw values, then
        values = OmegaConf.to_container(body, resolve=False)
    return {
        key: value
        for key, value in flatten(values).items()
        if not any(key == s or key.startswith(f"{s}.") for s in swept)
    }


def _record_job(config: DictConfig, status: str, error: str = "") -> None:
    """Record the job of ``config`` as ``status``, with the overrides that make it this job."""
    from animalseg.tracking.naming import science_overrides
    from animalseg.tracking.study import JobOutcome, record_job

    overrides = science_overrides(list(config.hydra.overrides.task))
    record_job(config.hydra.sweep.dir, JobOutcome(str(config.hydra.job.num), status, error, overrides))


def _one_line(error: BaseException, limit: int = 300) -> str:
    """``<type>: <message>`` on one line, cut at ``limit`` characters: what a failed job's record
    says (Hydra's errors put the cause on the message's later lines)."""
    line = " ".join(f"{type(error).__name__}: {error}".split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _summarize(config: DictConfig, ended: bool = False, stopped: bool = False, interrupted: bool = False) -> None:
    """Log the study's summary into its parent run; once the sweep has ``ended``, close the
    parent and print the summary."""
    from animalseg.tracking.study import close_parent, describe, job_outcomes, log_summary, parent_run_id

    sweep_dir = Path(config.hydra.sweep.dir)
    parent = parent_run_id(sweep_dir)
    if parent is None:
        return
    tracker = instantiate(config.logger)
    summary = log_summary(tracker.client, parent, sweep_dir / "summary", job_outcomes(sweep_dir), ended)
    if ended:
        status = close_parent(tracker.client, parent, summary, stopped, interrupted)
        print(describe(summary, parent, status, tracker.experiment_name, tracker.run_page(parent)))


def _close_sweep(stopped: bool = False, interrupted: bool = False) -> None:
    """End this process's multirun once: note whether a job failed (any job that did not
    complete, its process dead included) and close its study."""
    global _open_sweep, _sweep_failed
    config, _open_sweep = _open_sweep, None
    if config is None:
        return
    from animalseg.tracking.study import COMPLETED, job_outcomes

    _sweep_failed = any(job.status != COMPLETED for job in job_outcomes(config.hydra.sweep.dir).values())
    if "logger" in config:
        _summarize(config, ended=True, stopped=stopped, interrupted=interrupted)


def _close_sweep_after_error(interrupted: bool) -> None:
    """Close a multirun that stopped on an error or an interrupt; a failure to reach the
    tracking store then is a warning, not what the command reports."""
    try:
        _close_sweep(stopped=True, interrupted=interrupted)
    except Exception as error:
        print(f"warning: could not close the sweep's study: {error}", file=sys.stderr)


def _require_writable(directory: str, key: str) -> None:
    try:
        require_writable(directory, key)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
