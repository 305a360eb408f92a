"""The Ray Tune schedulers of a sweep: every result is reported to the Optuna study, and a trial is stopped
when the study's pruner (or Ray's ASHA) says so.

:class:`OptunaPruningScheduler` reports each epoch (or, with the seed-aware ``wilcoxon`` pruner, each
finished seed) to the trial and asks the study's pruner; :class:`StudyReportingASHA` is Ray's ASHA that
still records every curve in the study (the trials it stops are told PRUNED).
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from orchestrator.records import EPOCHS_DONE_KEY, FAILED_KEY
from orchestrator.tune.study import SweepStudy

__all__ = ["OptunaPruningScheduler", "StudyReportingASHA", "build_scheduler"]


class OptunaPruningScheduler(FIFOScheduler):
    """Reports every result to the study and stops a trial when the study's Optuna pruner says so."""

    def __init__(self, study: SweepStudy) -> None:
        super().__init__()
        self.study = study

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.study.report(trial.trial_id, result, trial.config, may_prune=True):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class StudyReportingASHA(ASHAScheduler):
    """Ray's ASHA deciding, the study recording: trials it stops are told to Optuna as PRUNED."""

    def __init__(self, study: SweepStudy, **options: Any) -> None:
        super().__init__(
            time_attr=EPOCHS_DONE_KEY,
            metric=study.space.metric,
            mode=study.space.metric_mode,
            max_t=max(1, study.space.base_config().epochs),
            **options,
        )
        self.study = study

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        self.study.report(trial.trial_id, result, trial.config, may_prune=False)
        if trial.config.get("stage") == "confirm" or result.get(FAILED_KEY) or self.metric not in result:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def build_scheduler(study: SweepStudy) -> TrialScheduler:
    if study.space.pruner.name == "asha":
        return StudyReportingASHA(study, **study.space.pruner.options)
    return OptunaPruningScheduler(study)
