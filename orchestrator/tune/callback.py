"""The Tune callback that keeps the sweep's own records: it journals every result and rewrites the Parquet
tables (:mod:`orchestrator.records`) whenever a trial ends, and at the end."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from orchestrator.plan import PlannedTrial
from orchestrator.records.journal import SweepRecorder
from orchestrator.records.tables import write_tables
from orchestrator.sweepdir import SweepDir, SweepMeta
from orchestrator.tune.study import SweepStudy

__all__ = ["ResultsCallback"]


class ResultsCallback(Callback):
    """Journals every result and rewrites the Parquet tables whenever a trial ends (and at the end)."""

    def __init__(self, study: SweepStudy, recorder: SweepRecorder, sweep_dir: SweepDir, meta: SweepMeta):
        self.study = study
        self.recorder = recorder
        self.sweep_dir = sweep_dir
        self.meta = meta
        self._configs: dict[str, dict[str, Any]] = {}

    def setup(self, **info: Any) -> None:
        # After ``Tuner.restore`` this object was unpickled without its records: replay the journal.
        self.recorder.reload()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.recorder.add(trial.trial_id, PlannedTrial.from_config(trial.config), result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.write()
        self.recorder.close()

    def write(self) -> None:
        trials = self.study.table_trials()
        write_tables(self.study.space, trials, self.recorder, self.sweep_dir, self.meta, self._configs)
