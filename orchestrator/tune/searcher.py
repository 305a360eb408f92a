"""What runs next: the Tune searcher that plans every trial of a sweep in its Optuna study.

Grid points are enqueued in plan order; random and optuna modes ``ask`` the study's sampler (a sampled
configuration's other search seeds follow as *repeats*); the confirmation stage is planned from the
study once the search stage has finished (the best configurations, or a multi-objective sweep's Pareto
front, on the confirmation seeds).

Restarts: the searcher's saved state (the Tune-trial → Optuna-trial map) is snapshotted together with
Tune's experiment state. An Optuna trial created after the last snapshot (the driver was killed) has no
Tune trial after the restore: it is an *orphan* and is handed out again — same Optuna trial, same plan
key, so the study and MLflow never hold a duplicate. Every decision is computed from the study, so
:meth:`TrialPlanner.is_complete` is valid after any restart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search import Searcher

from orchestrator.plan import (
    PlanKey,
    PlannedTrial,
    build_plan,
    confirm_trials,
    front_configs,
    rank_configs,
    search_stage,
    search_trials_for_config,
)
from orchestrator.space import SweepSpace
from orchestrator.tune.study import StudyEntry, SweepStudy

__all__ = ["OptunaSearcher", "TrialPlanner"]

log = logging.getLogger(__name__)


class TrialPlanner:
    """Next-trial planning over a :class:`SweepStudy`: orphans first, then the search stage (grid points,
    sampled configurations and their repeats), then the confirmation stage."""

    def __init__(self, study: SweepStudy) -> None:
        self.study = study
        self._orphans: list[int] | None = None
        self._repeats: list[PlannedTrial] = []
        self._search_finished = False
        self._fixed: list[PlannedTrial] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_orphans"], state["_fixed"], state["_repeats"] = None, None, []
        return state

    @property
    def space(self) -> SweepSpace:
        return self.study.space

    @property
    def fixed(self) -> list[PlannedTrial]:
        """The trials planned up front (grid mode), in plan order."""
        if self._fixed is None:
            self._fixed = build_plan(self.space).fixed
        return self._fixed

    def _sample_new(self, tune_trial_id: str, config_index: int) -> StudyEntry:
        """Ask the sampler for a new configuration; its first search seed becomes this trial."""
        trial = self.study.ask()
        params = dict(trial.params)
        config, stage = PlanKey.sampled(config_index), search_stage(self.space)
        planned = search_trials_for_config(self.space, self.space.base_config(), config, params, stage)
        first, rest = planned[0], planned[1:]
        entry = self.study.adopt(trial, first, tune_trial_id)
        self._repeats.extend(rest)
        return entry

    def _find_orphans(self) -> list[int]:
        """Optuna trials left RUNNING (or WAITING) that no restored Tune trial owns."""
        if self._orphans is None:
            owned = set(self.study.tune_to_number.values())
            for frozen in self.study.optuna.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                # Enqueued but never asked (the driver died in between): ask it now so it holds params.
                if frozen.user_attrs.get("plan_key"):
                    trial = self.study.ask()
                    self.study.reindex()  # re-index with the newly running trial
                    log.info("recovered enqueued Optuna trial %d", trial.number)
            for frozen in self.study.optuna.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if not frozen.user_attrs.get("plan_key"):
                    # Asked by a driver that died before it recorded what the trial was for.
                    self.study.optuna.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                    log.info("closed Optuna trial %d: its driver stopped before recording it", frozen.number)
            self._orphans = []
            for entry in self.study.entries():
                if entry.state != TrialState.RUNNING or entry.number in owned:
                    continue
                if self.study.latest.get(entry.planned.plan_key) == entry.number:
                    self._orphans.append(entry.number)
                else:  # an older attempt of a plan key that has a newer one
                    self.study.tell(entry, TrialState.FAIL, None, "superseded by a later attempt")
        return self._orphans

    def _sampled_configs(self) -> set[str]:
        """The sampled configurations (``o0007``) that have at least one trial."""
        keys = (PlanKey.parse(k) for k in self.study.latest)
        return {k.config for k in keys if k.kind == PlanKey.SAMPLED}

    def _missing_repeats(self) -> list[PlannedTrial]:
        """Search seeds of sampled configurations that have no trial yet (lost with a killed driver)."""
        if self.space.pruner.seed_aware or len(self.space.search.seeds) < 2:
            return []
        base = self.space.base_config()
        missing = []
        by_config: dict[PlanKey, StudyEntry] = {}
        for entry in self.study.latest_entries():
            key = PlanKey.parse(entry.planned.plan_key)
            if key.kind == PlanKey.SAMPLED:
                by_config.setdefault(key.with_seed(None), entry)
        for config, entry in by_config.items():
            for planned in search_trials_for_config(
                self.space, base, config, entry.planned.params, entry.planned.stage
            ):
                if planned.plan_key not in self.study.latest:
                    missing.append(planned)
        return missing

    def next_trial(self, tune_trial_id: str) -> dict[str, Any] | None | str:
        """The config of the next Tune trial, ``None`` to wait, or ``Searcher.FINISHED``."""
        orphans = self._find_orphans()
        if orphans:
            entry = self.study.entry(orphans.pop(0))
            self.study.hand_out(entry, tune_trial_id)
            log.info("handing out orphaned Optuna trial %d (%s) again", entry.number, entry.planned.plan_key)
            return entry.planned.to_config()
        if not self._search_finished:
            planned = self._next_search_trial(tune_trial_id)
            if planned is not None:
                return planned
            self._search_finished = True
        if self.space.confirm:
            return self._next_confirm_trial(tune_trial_id)
        return Searcher.FINISHED

    def _next_search_trial(self, tune_trial_id: str) -> dict[str, Any] | None:
        if self.space.search.mode == "grid":
            for planned in self.fixed:
                if planned.plan_key not in self.study.latest:
                    return self.study.create(planned, tune_trial_id).planned.to_config()
            return None
        if not self._repeats:
            self._repeats = self._missing_repeats()
        if self._repeats:
            return self.study.create(self._repeats.pop(0), tune_trial_id).planned.to_config()
        sampled = self._sampled_configs()
        if len(sampled) < int(self.space.search.samples or 0):
            return self._sample_new(tune_trial_id, len(sampled)).planned.to_config()
        return None

    def _next_confirm_trial(self, tune_trial_id: str) -> dict[str, Any] | None | str:
        planned = self._confirm_plan()
        if planned is None:
            return None  # the ranking needs every search trial finished
        for trial in planned:
            if trial.plan_key not in self.study.latest:
                return self.study.create(trial, tune_trial_id).planned.to_config()
        return Searcher.FINISHED

    def _confirm_plan(self) -> list[PlannedTrial] | None:
        """The confirmation trials, or None while a search trial is still running."""
        search = [e for e in self.study.latest_entries() if e.planned.stage != "confirm"]
        if any(e.state == TrialState.RUNNING for e in search):
            return None
        finished = [e for e in search if e.state == TrialState.COMPLETE]
        if self.space.multi_objective:
            ranking = front_configs(
                ((e.planned.config_hash, e.planned.params, e.values) for e in finished),
                [o.mode for o in self.space.objectives],
            )
        else:
            ranking = rank_configs(
                ((e.planned.config_hash, e.planned.params, e.value) for e in finished), self.space.metric_mode
            )
        return confirm_trials(self.space, ranking)

    def is_complete(self) -> bool:
        """Every planned trial exists and has finished (computed from the study, so valid after a restart)."""
        if any(e.state == TrialState.RUNNING for e in self.study.latest_entries()):
            return False
        if self.space.search.mode == "grid":
            if any(p.plan_key not in self.study.latest for p in self.fixed):
                return False
        else:
            sampled = self._sampled_configs()
            if len(sampled) < int(self.space.search.samples or 0) or self._missing_repeats():
                return False
        if self.space.confirm:
            planned = self._confirm_plan()
            if planned is None or any(p.plan_key not in self.study.latest for p in planned):
                return False
        return True

    # ----------------------------------------------------------------------------------------------
    # persistence of the Tune ↔ Optuna map (snapshotted with Tune's experiment state)
    def get_state(self) -> dict[str, Any]:
        return self.study.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.study.set_state(state)
        self._orphans = None


class OptunaSearcher(Searcher):
    """A Tune searcher whose every suggestion is an Optuna trial of the sweep's study."""

    def __init__(self, planner: TrialPlanner) -> None:
        super().__init__(metric=planner.space.metric, mode=planner.space.metric_mode)
        self.planner = planner

    def suggest(self, trial_id: str) -> dict[str, Any] | None | str:
        return self.planner.next_trial(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Results are reported to the study by the scheduler (it sees them first and may prune)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.planner.study.complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps(self.planner.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self.planner.set_state(json.loads(Path(checkpoint_path).read_text()))

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # Tune's ConcurrencyLimiter does it
