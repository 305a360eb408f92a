"""One Optuna study per sweep, driven from Ray Tune: a searcher (ask/tell) and a pruning scheduler.

Why not Ray's ``OptunaSearch``: it hard-codes Optuna's ``NopPruner`` (Optuna's pruners never act), tells
trials stopped by a Ray scheduler as COMPLETE with a low-fidelity value, and leaves a trial RUNNING
forever when a metric is NaN (orchestration.md). Here the study is the single source of truth:

* :class:`StudyBridge` owns the study (SQLite ``optuna.db`` in the sweep directory, written only by the
  Tune driver) and an in-memory index of its trials by *plan key* (orchestrator.plan). Every Tune trial
  is one Optuna trial; a pruned trial is told PRUNED, a failed or non-finite one FAIL, a finished one
  COMPLETE. NaN never reaches Optuna.
* :class:`OptunaSearcher` is the Tune ``Searcher``: grid points are enqueued in plan order, random and
  optuna modes ``ask`` the study's sampler, the confirmation stage is planned from the study once the
  search stage has finished.
* :class:`OptunaPruningScheduler` is the Tune ``TrialScheduler``: it reports each epoch (or, with the
  seed-aware ``wilcoxon`` pruner, each finished seed) to the trial and asks the study's pruner;
  :class:`StudyReportingASHA` is Ray's ASHA that still records every curve in the study.

Restarts: the searcher's saved state (the Tune-trial → Optuna-trial map) is snapshotted together with
Tune's experiment state. An Optuna trial created after the last snapshot (the driver was killed) has no
Tune trial after the restore: it is an *orphan* and is handed out again — same Optuna trial, same plan
key, so the study and MLflow never hold a duplicate. A Tune trial restarted after it errored gets a new
Optuna trial ("attempt") with the same params, because Optuna cannot reopen a finished trial.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
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
from orchestrator.records import (
    COMPLETE_KEY,
    EPOCHS_DONE_KEY,
    FAILED_KEY,
    SEED_DONE_KEY,
    SEED_INDEX_KEY,
    TrialStatus,
)
from orchestrator.records.tables import StudyTrial
from orchestrator.space import Param, SweepSpace
from orchestrator.sweepdir import SweepDir

__all__ = [
    "OptunaPruningScheduler",
    "OptunaSearcher",
    "StudyBridge",
    "StudyReportingASHA",
    "TrialStatus",
    "build_scheduler",
    "distributions",
    "status_from_optuna",
]

log = logging.getLogger(__name__)


def status_from_optuna(state: TrialState) -> TrialStatus:
    """The trial status of an Optuna state (WAITING and RUNNING are both RUNNING: asked, not told)."""
    return {
        TrialState.COMPLETE: TrialStatus.COMPLETE,
        TrialState.PRUNED: TrialStatus.PRUNED,
        TrialState.FAIL: TrialStatus.FAILED,
    }.get(state, TrialStatus.RUNNING)


def distributions(space: SweepSpace) -> dict[str, BaseDistribution]:
    """Optuna distributions of the varied values (the arm is a categorical ``arm`` param)."""
    return {p.key: _distribution(p) for p in space.all_params()}


def _distribution(param: Param) -> BaseDistribution:
    if param.kind in ("grid", "choice"):
        return CategoricalDistribution(list(param.values))
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), step=param.step, log=param.log)


@dataclass
class _Entry:
    """What the bridge knows about one Optuna trial."""

    number: int
    trial_id: int
    planned: PlannedTrial
    state: TrialState
    values: tuple[float, ...] | None = None
    """Every objective's final value (COMPLETE trials), in the space's order."""
    attempt: int = 1
    seed_values: dict[int, float] = field(default_factory=dict)
    """Seed-aware trials: step (seed index) → that seed's final metric."""
    reported: set[int] = field(default_factory=set)
    """Steps already reported (a resumed trial replays the epochs after its last checkpoint)."""

    @property
    def value(self) -> float | None:
        """The first objective's final value."""
        return None if self.values is None else self.values[0]


class StudyBridge:
    """The sweep's Optuna study plus the bookkeeping that ties it to Tune trials.

    Shared by the searcher, the scheduler and the driver's callbacks inside one pickle (Ray Tune
    pickles the Tuner's config once and restores it on ``Tuner.restore``), so the study connection is
    opened lazily and dropped when pickled.
    """

    def __init__(self, space: SweepSpace, sweep_dir: SweepDir) -> None:
        self.space = space
        self.sweep_dir = sweep_dir
        self.tune_to_number: dict[str, int] = {}
        self._study: optuna.Study | None = None
        self._entries: dict[int, _Entry] | None = None
        self._latest: dict[str, int] = {}
        self._orphans: list[int] | None = None
        self._repeats: list[PlannedTrial] = []
        self._search_finished = False
        self._epochs = space.base_config().epochs
        self._fixed: list[PlannedTrial] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_study", "_entries", "_orphans", "_fixed"):
            state[transient] = None
        state["_latest"], state["_repeats"] = {}, []
        state["tune_to_number"] = {}
        return state

    # ----------------------------------------------------------------------------------------------
    # the study
    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = optuna.storages.RDBStorage(
                self.sweep_dir.optuna_url, engine_kwargs={"connect_args": {"timeout": 60}}
            )
            study = optuna.create_study(
                storage=storage,
                study_name=self.sweep_dir.name,  # the sweep name (--name may differ from the file's)
                directions=["maximize" if o.mode == "max" else "minimize" for o in self.space.objectives],
                pruner=self._pruner(),
                load_if_exists=True,
            )
            # A seeded sampler restarts its random stream with every driver: seeded identically after a
            # restart it would propose the configurations it proposed at the start again. Offsetting
            # the seed by the trials already in the study keeps runs reproducible and restarts fresh.
            study.sampler = self._sampler(offset=len(study.get_trials(deepcopy=False)))
            self._study = study
            self._study.set_user_attr("metric", self.space.metric)
            self._study.set_user_attr("objectives", [str(o) for o in self.space.objectives])
            self._study.set_user_attr("space_hash", self.space.space_hash())
        return self._study

    def _sampler(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        search = self.space.search
        seed = search.sampler_seed + offset
        if search.mode == "optuna" and search.sampler == "tpe":
            samples = int(search.samples or 1)
            startup = search.n_startup_trials
            if startup is None:
                startup = max(2, min(10, samples // 3))
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True
            )
        if search.mode == "optuna" and search.sampler == "nsga2":
            population = search.population_size
            if population is None:
                population = max(2, min(50, int(search.samples or 1) // 3))
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        return optuna.samplers.RandomSampler(seed=seed)

    def _pruner(self) -> optuna.pruners.BasePruner:
        spec = self.space.pruner
        return PRUNER_CONSTRUCTORS[spec.name](dict(spec.options), self._epochs)

    def _index(self) -> dict[int, _Entry]:
        """The in-memory view of the study, built once; the driver is the only writer after that."""
        if self._entries is None:
            self._entries = {}
            for frozen in self.study.get_trials(deepcopy=False):
                attrs = frozen.user_attrs
                if "plan_key" not in attrs:
                    continue
                entry = _Entry(
                    number=frozen.number,
                    trial_id=frozen._trial_id,
                    planned=PlannedTrial.from_config(attrs),
                    state=frozen.state,
                    values=None if frozen.values is None else tuple(frozen.values),
                    attempt=int(attrs.get("attempt", 1)),
                )
                entry.reported = {int(step) for step in frozen.intermediate_values}
                if self.space.pruner.seed_aware:
                    entry.seed_values = {int(k): float(v) for k, v in frozen.intermediate_values.items()}
                self._entries[frozen.number] = entry
                previous = self._latest.get(entry.planned.plan_key)
                if previous is None or previous < frozen.number:
                    self._latest[entry.planned.plan_key] = frozen.number
        return self._entries

    def entries(self) -> list[_Entry]:
        return sorted(self._index().values(), key=lambda e: e.number)

    def latest_entries(self) -> list[_Entry]:
        """The newest attempt of every plan key, in creation order."""
        index = self._index()
        return sorted((index[n] for n in self._latest.values()), key=lambda e: e.number)

    def entry_for_tune_trial(self, tune_trial_id: str) -> _Entry | None:
        number = self.tune_to_number.get(tune_trial_id)
        return None if number is None else self._index().get(number)

    @property
    def fixed(self) -> list[PlannedTrial]:
        """The trials planned up front (grid mode), in plan order."""
        if self._fixed is None:
            self._fixed = build_plan(self.space).fixed
        return self._fixed

    # ----------------------------------------------------------------------------------------------
    # creating trials
    def _create(self, planned: PlannedTrial, tune_trial_id: str, attempt: int = 1) -> _Entry:
        attrs = {
            **planned.to_config(),
            **_seed_attr(planned),
            "attempt": attempt,
            "tune_trial_id": tune_trial_id,
        }
        self.study.enqueue_trial(planned.params, user_attrs=attrs)
        trial = self.study.ask(distributions(self.space))
        entry = _Entry(trial.number, trial._trial_id, planned, TrialState.RUNNING, attempt=attempt)
        self._index()[trial.number] = entry
        self._latest[planned.plan_key] = trial.number
        self.tune_to_number[tune_trial_id] = trial.number
        return entry

    def _trial(self, entry: _Entry) -> optuna.trial.Trial:
        """A live handle on a RUNNING trial (Optuna has no public lookup by number for that)."""
        return optuna.trial.Trial(self.study, entry.trial_id)

    def _sample_new(self, tune_trial_id: str, config_index: int) -> _Entry:
        """Ask the sampler for a new configuration; its first search seed becomes this trial."""
        trial = self.study.ask(distributions(self.space))
        params = dict(trial.params)
        config, stage = PlanKey.sampled(config_index), search_stage(self.space)
        planned = search_trials_for_config(self.space, self.space.base_config(), config, params, stage)
        first, rest = planned[0], planned[1:]
        for key, value in {
            **first.to_config(),
            **_seed_attr(first),
            "attempt": 1,
            "tune_trial_id": tune_trial_id,
        }.items():
            trial.set_user_attr(key, value)
        entry = _Entry(trial.number, trial._trial_id, first, TrialState.RUNNING)
        self._index()[trial.number] = entry
        self._latest[first.plan_key] = trial.number
        self.tune_to_number[tune_trial_id] = trial.number
        self._repeats.extend(rest)
        return entry

    def _find_orphans(self) -> list[int]:
        """Optuna trials left RUNNING (or WAITING) that no restored Tune trial owns."""
        if self._orphans is None:
            owned = set(self.tune_to_number.values())
            for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                # Enqueued but never asked (the driver died in between): ask it now so it holds params.
                if frozen.user_attrs.get("plan_key"):
                    trial = self.study.ask(distributions(self.space))
                    self._entries = None  # re-index with the newly running trial
                    log.info("recovered enqueued Optuna trial %d", trial.number)
            for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if not frozen.user_attrs.get("plan_key"):
                    # Asked by a driver that died before it recorded what the trial was for.
                    self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                    log.info("closed Optuna trial %d: its driver stopped before recording it", frozen.number)
            self._orphans = []
            for entry in self.entries():
                if entry.state != TrialState.RUNNING or entry.number in owned:
                    continue
                if self._latest.get(entry.planned.plan_key) == entry.number:
                    self._orphans.append(entry.number)
                else:  # an older attempt of a plan key that has a newer one
                    self._tell(entry, TrialState.FAIL, None, "superseded by a later attempt")
        return self._orphans

    def _sampled_configs(self) -> set[str]:
        """The sampled configurations (``o0007``) that have at least one trial."""
        keys = (PlanKey.parse(k) for k in self._latest)
        return {k.config for k in keys if k.kind == PlanKey.SAMPLED}

    def _missing_repeats(self) -> list[PlannedTrial]:
        """Search seeds of sampled configurations that have no trial yet (lost with a killed driver)."""
        if self.space.pruner.seed_aware or len(self.space.search.seeds) < 2:
            return []
        base = self.space.base_config()
        missing = []
        by_config: dict[PlanKey, _Entry] = {}
        for entry in self.latest_entries():
            key = PlanKey.parse(entry.planned.plan_key)
            if key.kind == PlanKey.SAMPLED:
                by_config.setdefault(key.with_seed(None), entry)
        for config, entry in by_config.items():
            for planned in search_trials_for_config(
                self.space, base, config, entry.planned.params, entry.planned.stage
            ):
                if planned.plan_key not in self._latest:
                    missing.append(planned)
        return missing

    def next_trial(self, tune_trial_id: str) -> dict[str, Any] | None | str:
        """The config of the next Tune trial, ``None`` to wait, or ``Searcher.FINISHED``."""
        orphans = self._find_orphans()
        if orphans:
            entry = self._index()[orphans.pop(0)]
            self.tune_to_number[tune_trial_id] = entry.number
            self._trial(entry).set_user_attr("tune_trial_id", tune_trial_id)
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
        self._index()
        if self.space.search.mode == "grid":
            for planned in self.fixed:
                if planned.plan_key not in self._latest:
                    return self._create(planned, tune_trial_id).planned.to_config()
            return None
        if not self._repeats:
            self._repeats = self._missing_repeats()
        if self._repeats:
            return self._create(self._repeats.pop(0), tune_trial_id).planned.to_config()
        sampled = self._sampled_configs()
        if len(sampled) < int(self.space.search.samples or 0):
            return self._sample_new(tune_trial_id, len(sampled)).planned.to_config()
        return None

    def _next_confirm_trial(self, tune_trial_id: str) -> dict[str, Any] | None | str:
        planned = self._confirm_plan()
        if planned is None:
            return None  # the ranking needs every search trial finished
        for trial in planned:
            if trial.plan_key not in self._latest:
                return self._create(trial, tune_trial_id).planned.to_config()
        return Searcher.FINISHED

    def _confirm_plan(self) -> list[PlannedTrial] | None:
        """The confirmation trials, or None while a search trial is still running."""
        search = [e for e in self.latest_entries() if e.planned.stage != "confirm"]
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

    def ranking(self) -> list[Any]:
        """Configurations by mean objective over their completed runs (all stages); those measured on
        every seed first."""
        finished = [e for e in self.latest_entries() if e.state == TrialState.COMPLETE]
        if self.space.pruner.seed_aware:
            values = (
                (e.planned.config_hash, e.planned.params, v) for e in finished for v in e.seed_values.values()
            )
        else:
            values = ((e.planned.config_hash, e.planned.params, e.value) for e in finished)
        return rank_configs(values, self.space.metric_mode, all_seeds=len(self.space.seeds))

    def front(self) -> list[Any]:
        """Several objectives: the configurations on the Pareto front of their mean objective values over
        every completed run (all stages), best first by the first objective (what the report marks)."""
        finished = [e for e in self.latest_entries() if e.state == TrialState.COMPLETE]
        return front_configs(
            ((e.planned.config_hash, e.planned.params, e.values) for e in finished),
            [o.mode for o in self.space.objectives],
        )

    def is_complete(self) -> bool:
        """Every planned trial exists and has finished (computed from the study, so valid after a restart)."""
        self._index()
        if any(e.state == TrialState.RUNNING for e in self.latest_entries()):
            return False
        if self.space.search.mode == "grid":
            if any(p.plan_key not in self._latest for p in self.fixed):
                return False
        else:
            sampled = self._sampled_configs()
            if len(sampled) < int(self.space.search.samples or 0) or self._missing_repeats():
                return False
        if self.space.confirm:
            planned = self._confirm_plan()
            if planned is None or any(p.plan_key not in self._latest for p in planned):
                return False
        return True

    # ----------------------------------------------------------------------------------------------
    # results
    def _live_entry(self, tune_trial_id: str, config: dict[str, Any] | None) -> _Entry | None:
        """The running Optuna trial of a Tune trial, opening a new attempt if the last one finished."""
        entry = self.entry_for_tune_trial(tune_trial_id)
        if entry is None and config is not None:
            # A restored Tune trial the saved map does not know (state saved before the map was).
            number = self._latest.get(config["plan_key"])
            if number is not None:
                self.tune_to_number[tune_trial_id] = number
                entry = self._index()[number]
        if entry is None:
            return None
        if entry.state != TrialState.RUNNING:
            if entry.state == TrialState.FAIL:
                log.info("Tune retries %s after it failed: new Optuna attempt", entry.planned.plan_key)
                entry = self._create(entry.planned, tune_trial_id, attempt=entry.attempt + 1)
            else:
                return None  # finished before the driver stopped; the replayed results change nothing
        return entry

    def report(
        self, tune_trial_id: str, result: dict[str, Any], config: dict[str, Any], may_prune: bool
    ) -> bool:
        """Record one Tune result in the study; return True if the configured pruner says stop."""
        entry = self._live_entry(tune_trial_id, config)
        if entry is None:
            return False
        if self.space.pruner.seed_aware:
            if not result.get(SEED_DONE_KEY):
                return False
            step = int(result[SEED_INDEX_KEY])
        else:
            step = int(result.get("epoch", result.get("training_iteration", 1) - 1))
        value = _finite(result.get(self.space.metric))
        if value is None:
            return False  # NaN / inf never reaches Optuna; the trial is told FAIL when it ends
        if step in entry.reported:
            return False  # replayed after a resume: already in the study, already judged
        if self.space.multi_objective:
            # Optuna keeps no intermediate values for a multi-objective trial (and nothing could prune
            # on them: the space refuses pruners with several objectives); the final values are told.
            entry.reported.add(step)
            return False
        trial = self._trial(entry)
        if self.space.pruner.seed_aware:
            entry.seed_values[step] = value
        trial.report(value, step)
        entry.reported.add(step)
        if result.get(COMPLETE_KEY):
            return False  # the last step: nothing left to save by stopping
        if not (may_prune and entry.planned.stage != "confirm" and self.space.pruner.is_optuna):
            return False
        return trial.should_prune()

    def complete(self, tune_trial_id: str, result: dict[str, Any] | None, error: bool) -> str | None:
        """Tell the study how a Tune trial ended; returns the status told (None if already told)."""
        entry = self._live_entry(tune_trial_id, None)
        if entry is None:
            return None
        result = result or {}
        reason = ""
        if error:
            state, reason = TrialState.FAIL, "the trial raised (see Ray Tune's error file)"
        elif result.get(FAILED_KEY):
            state, reason = TrialState.FAIL, str(result[FAILED_KEY])
        elif result.get(COMPLETE_KEY):
            state = TrialState.COMPLETE
        elif not result:
            state, reason = TrialState.FAIL, "stopped before it reported a result"
        else:
            state = TrialState.PRUNED  # stopped early: by our pruner, or by ASHA
        values = None
        if state == TrialState.COMPLETE:
            finals = self._final_values(entry, result)
            bad = [o.metric for o, v in zip(self.space.objectives, finals, strict=True) if v is None]
            if bad:
                state, reason = TrialState.FAIL, f"non-finite {', '.join(bad)}"
            else:
                values = tuple(v for v in finals if v is not None)
        self._tell(entry, state, values, reason)
        return status_from_optuna(state)

    def _final_values(self, entry: _Entry, result: dict[str, Any]) -> tuple[float | None, ...]:
        """Every objective's value at the trial's end; None for one that is missing or not finite."""
        if self.space.pruner.seed_aware:  # one objective (the space refuses pruners with several)
            values = [v for _, v in sorted(entry.seed_values.items())]
            return (sum(values) / len(values) if len(values) == len(entry.planned.seeds) else None,)
        return tuple(_finite(result.get(o.metric)) for o in self.space.objectives)

    def _tell(
        self, entry: _Entry, state: TrialState, values: tuple[float, ...] | None, reason: str = ""
    ) -> None:
        if reason:
            self._trial(entry).set_user_attr("fail_reason", reason)
        if state == TrialState.COMPLETE:
            self.study.tell(entry.number, list(values or ()), skip_if_finished=True)
        else:
            self.study.tell(entry.number, state=state, skip_if_finished=True)
        entry.state = state
        entry.values = values
        log.debug("told Optuna trial %d: %s %s", entry.number, state.name, values)

    def fail_leftovers(self, reason: str) -> int:
        """Tell FAIL to every trial still RUNNING (only called when the whole sweep has ended)."""
        count = 0
        for entry in self.entries():
            if entry.state == TrialState.RUNNING:
                self._tell(entry, TrialState.FAIL, None, reason)
                count += 1
        return count

    def table_trials(self) -> list[StudyTrial]:
        """The newest attempt of every plan key, as the Parquet tables need it."""
        tune_ids: dict[int, str] = {}
        for tune_id, number in self.tune_to_number.items():
            tune_ids.setdefault(number, tune_id)
        return [
            StudyTrial(e.number, e.planned, status_from_optuna(e.state), tune_ids.get(e.number, ""))
            for e in self.latest_entries()
        ]

    def status_of(self, number: int) -> str:
        return status_from_optuna(self._index()[number].state)

    def status_counts(self) -> dict[str, int]:
        """How many plan keys' newest attempts are in each status (what the closing line and the MLflow
        parent's summary count)."""
        counts: dict[str, int] = {}
        for entry in self.latest_entries():
            status = self.status_of(entry.number)
            counts[status] = counts.get(status, 0) + 1
        return counts

    # ----------------------------------------------------------------------------------------------
    # persistence of the Tune ↔ Optuna map (snapshotted with Tune's experiment state)
    def get_state(self) -> dict[str, Any]:
        return {"tune_to_number": dict(self.tune_to_number)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tune_to_number = {str(k): int(v) for k, v in state.get("tune_to_number", {}).items()}
        self._orphans = None


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------
# Ray Tune glue


class OptunaSearcher(Searcher):
    """A Tune searcher whose every suggestion is an Optuna trial of the sweep's study."""

    def __init__(self, bridge: StudyBridge) -> None:
        super().__init__(metric=bridge.space.metric, mode=bridge.space.metric_mode)
        self.bridge = bridge

    def suggest(self, trial_id: str) -> dict[str, Any] | None | str:
        return self.bridge.next_trial(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Results are reported to the study by the scheduler (it sees them first and may prune)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.bridge.complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps(self.bridge.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        self.bridge.set_state(json.loads(Path(checkpoint_path).read_text()))

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # Tune's ConcurrencyLimiter does it


class OptunaPruningScheduler(FIFOScheduler):
    """Reports every result to the study and stops a trial when the study's Optuna pruner says so."""

    def __init__(self, bridge: StudyBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.bridge.report(trial.trial_id, result, trial.config, may_prune=True):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class StudyReportingASHA(ASHAScheduler):
    """Ray's ASHA deciding, the study recording: trials it stops are told to Optuna as PRUNED."""

    def __init__(self, bridge: StudyBridge, **options: Any) -> None:
        super().__init__(
            time_attr=EPOCHS_DONE_KEY,
            metric=bridge.space.metric,
            mode=bridge.space.metric_mode,
            max_t=max(1, bridge.space.base_config().epochs),
            **options,
        )
        self.bridge = bridge

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        self.bridge.report(trial.trial_id, result, trial.config, may_prune=False)
        if trial.config.get("stage") == "confirm" or result.get(FAILED_KEY) or self.metric not in result:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def build_scheduler(bridge: StudyBridge) -> TrialScheduler:
    if bridge.space.pruner.name == "asha":
        return StudyReportingASHA(bridge, **bridge.space.pruner.options)
    return OptunaPruningScheduler(bridge)


def _hyperband(options: dict[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    if options.get("max_resource") is None:
        options["max_resource"] = epochs
    return optuna.pruners.HyperbandPruner(**options)


def _wilcoxon(options: dict[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.6; we pin Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(**options)


PRUNER_CONSTRUCTORS: dict[str, Any] = {
    "none": lambda options, epochs: optuna.pruners.NopPruner(),
    "median": lambda options, epochs: optuna.pruners.MedianPruner(**options),
    "successive_halving": lambda options, epochs: optuna.pruners.SuccessiveHalvingPruner(**options),
    "hyperband": _hyperband,
    "wilcoxon": _wilcoxon,
    # ASHA is Ray Tune's scheduler (build_scheduler); the study itself then prunes nothing.
    "asha": lambda options, epochs: optuna.pruners.NopPruner(),
}
"""Space pruner name (``orchestrator.space.PRUNERS``, with its defaults) → ``(options, epochs) -> pruner``."""


def _seed_attr(planned: PlannedTrial) -> dict[str, Any]:
    """The seed as its own user attribute, so Optuna's views (optuna-dashboard) show which seed a trial
    ran; a seed-aware trial runs several and keeps only the ``seeds`` list."""
    return {"seed": planned.seeds[0]} if len(planned.seeds) == 1 else {}
