"""Hydra's Optuna sweeper, resumable: a killed search started again with the same command goes on.

hydra-optuna-sweeper (1.2/1.3) loads an existing study from ``storage`` but then runs
``n_trials`` more, numbering jobs from 0 again (over the finished trials' folders), and leaves
the trial that was killed RUNNING forever. Here ``n_trials`` is the study's total: finished
trials are kept as they are, a killed trial is run again with its own parameters in its own job
folder (so its training resumes from its checkpoint into its MLflow run), and new trials take
the next job numbers.

The study's storage is a database (``sqlite:///<sweep dir>/optuna.db``): Optuna 2.10, the newest
the Hydra sweeper allows, stamps a new database's schema version without committing it under
SQLAlchemy 2 (which MLflow 3 needs), and then fails on its own assertion; ``stamp_storage``
commits that stamp first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import alembic.config
import optuna
import sqlalchemy
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hydra.core.utils import JobReturn
from optuna.trial import Trial, TrialState

from animalseg.compat.optuna import OptunaSweeperImpl, create_params_from_overrides
from animalseg.compat.optuna import storage_models as models

log = logging.getLogger(__name__)


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    """What ``hydra_plugins.animalseg_sweepers.ResumableOptunaSweeper`` runs (Hydra only accepts
    plugin classes from the ``hydra_plugins`` package)."""

    def sweep(self, arguments: list[str]) -> None:
        study = self._stored_study()
        if study is not None:
            trials = study.get_trials(deepcopy=False)
            killed = [t for t in trials if t.state == TrialState.RUNNING]
            finished = len(trials) - len(killed)
            log.info("Resuming study %s: %d trials finished, %d to run again", study.study_name, finished, len(killed))
            for frozen in killed:
                self._rerun(study, Trial(study, frozen._trial_id), frozen.number, arguments)
            self.n_trials = max(0, self.n_trials - len(trials))
            self.job_idx = len(trials)  # job number = trial number: new trials get new folders
        super().sweep(arguments)

    def _stored_study(self) -> optuna.Study | None:
        if self.storage is None:
            return None
        stamp_storage(str(self.storage))
        try:
            return optuna.load_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler)
        except KeyError:  # no such study yet
            return None

    def _rerun(self, study: optuna.Study, trial: Trial, job_num: int, arguments: list[str]) -> None:
        """Run a killed trial again with its stored parameters as job ``job_num``, and record it."""
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides([*self._parse_sweeper_params_config(), *arguments])
        distributions = {**(self.search_space_distributions or {}), **distributions}
        for name in fixed:
            distributions.pop(name, None)
        [job] = self.launcher.launch(self._configure_trials([trial], distributions, fixed), initial_job_idx=job_num)
        values = _objective_values(job)
        study.tell(trial, values, TrialState.COMPLETE if values is not None else TrialState.FAIL)


def stamp_storage(url: str) -> None:
    """Create Optuna's tables in the database ``url`` and commit its schema version, once."""
    engine = sqlalchemy.create_engine(url)
    try:
        models.BaseModel.metadata.create_all(engine)
        with engine.begin() as connection:  # a transaction that commits (see the module docstring)
            context = MigrationContext.configure(connection)
            if context.get_current_revision() is None:
                migrations = Path(models.__file__).parent / "alembic"
                config = alembic.config.Config()
                config.set_main_option("script_location", str(migrations).replace("%", "%%"))
                script = ScriptDirectory.from_config(config)
                context.stamp(script, script.get_current_head())
    finally:
        engine.dispose()


def _objective_values(job: JobReturn) -> list[float] | None:
    """The job's objective value(s), or None for a failed job."""
    try:
        value = job.return_value
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
    except Exception:  # the job's error, or a value that is not a number: the trial failed
        return None
