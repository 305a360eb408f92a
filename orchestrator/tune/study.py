"""The sweep's Optuna study (SQLite ``optuna.db`` in the sweep directory, written only by the Tune driver):
its storage, an in-memory index of its trials by *plan key* (:mod:`orchestrator.plan`), and telling it
how each trial went.

Why not Ray's ``OptunaSearch``: it hard-codes Optuna's ``NopPruner`` (Optuna's pruners never act), tells
trials stopped by a Ray scheduler as COMPLETE with a low-fidelity value, and leaves a trial RUNNING
forever when a metric is NaN (orchestration.md). Here the study is the single source of truth: every
Tune trial is one Optuna trial; a pruned trial is told PRUNED, a failed or non-finite one FAIL, a
finished one COMPLETE. NaN never reaches Optuna.

:class:`SweepStudy` is shared by the searcher (:mod:`orchestrator.tune.searcher`, which decides what runs
next), the schedulers (:mod:`orchestrator.tune.schedulers`, which report every result and may prune) and
the driver's callbacks. A Tune trial restarted after it errored gets a new Optuna trial ("attempt") with
the same params, because Optuna cannot reopen a finished trial.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from orchestrator.plan import PlannedTrial, front_configs, rank_configs
from orchestrator.records import COMPLETE_KEY, FAILED_KEY, SEED_DONE_KEY, SEED_INDEX_KEY, TrialStatus
from orchestrator.records.tables import StudyTrial
from orchestrator.space import Param, SweepSpace
from orchestrator.sweepdir import SweepDir
from orchestrator.tune.pruners import PRUNER_CONSTRUCTORS

__all__ = ["StudyEntry", "SweepStudy", "distributions", "status_from_optuna"]

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
class StudyEntry:
    """What the sweep study knows about one Optuna trial."""

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


class SweepStudy:
    """The sweep's Optuna study plus the bookkeeping that ties it to Tune trials.

    Shared by the searcher, the schedulers and the driver's callbacks inside one pickle (Ray Tune
    pickles the Tuner's config once and restores it on ``Tuner.restore``), so the study connection is
    opened lazily and dropped when pickled.
    """

    def __init__(self, space: SweepSpace, sweep_dir: SweepDir) -> None:
        self.space = space
        self.sweep_dir = sweep_dir
        self.tune_to_number: dict[str, int] = {}
        self._study: optuna.Study | None = None
        self._entries: dict[int, StudyEntry] | None = None
        self._latest: dict[str, int] = {}
        self._epochs = space.base_config().epochs

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_study", "_entries"):
            state[transient] = None
        state["_latest"] = {}
        state["tune_to_number"] = {}
        return state

    # ----------------------------------------------------------------------------------------------
    # the study
    @property
    def optuna(self) -> optuna.Study:
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

    def _index(self) -> dict[int, StudyEntry]:
        """The in-memory view of the study, built once; the driver is the only writer after that."""
        if self._entries is None:
            self._entries = {}
            for frozen in self.optuna.get_trials(deepcopy=False):
                attrs = frozen.user_attrs
                if "plan_key" not in attrs:
                    continue
                entry = StudyEntry(
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

    def entries(self) -> list[StudyEntry]:
        return sorted(self._index().values(), key=lambda e: e.number)

    def latest_entries(self) -> list[StudyEntry]:
        """The newest attempt of every plan key, in creation order."""
        index = self._index()
        return sorted((index[n] for n in self._latest.values()), key=lambda e: e.number)

    def entry(self, number: int) -> StudyEntry:
        return self._index()[number]

    def entry_for_tune_trial(self, tune_trial_id: str) -> StudyEntry | None:
        number = self.tune_to_number.get(tune_trial_id)
        return None if number is None else self._index().get(number)

    @property
    def latest(self) -> dict[str, int]:
        """Plan key → the number of its newest attempt (read it, never write it)."""
        self._index()
        return self._latest

    def reindex(self) -> None:
        """Forget the index: the next read rebuilds it from the study."""
        self._entries = None

    # ----------------------------------------------------------------------------------------------
    # creating trials
    def create(self, planned: PlannedTrial, tune_trial_id: str, attempt: int = 1) -> StudyEntry:
        self.optuna.enqueue_trial(planned.params, user_attrs=_user_attrs(planned, tune_trial_id, attempt))
        trial = self.ask()
        return self._register(trial, planned, tune_trial_id, attempt)

    def ask(self) -> optuna.trial.Trial:
        """A new trial from the study's sampler (or the next enqueued one)."""
        return self.optuna.ask(distributions(self.space))

    def adopt(self, trial: optuna.trial.Trial, planned: PlannedTrial, tune_trial_id: str) -> StudyEntry:
        """Record what a trial just asked from the sampler is for (its plan key and seed)."""
        for key, value in _user_attrs(planned, tune_trial_id, attempt=1).items():
            trial.set_user_attr(key, value)
        return self._register(trial, planned, tune_trial_id)

    def _register(
        self, trial: optuna.trial.Trial, planned: PlannedTrial, tune_trial_id: str, attempt: int = 1
    ) -> StudyEntry:
        entry = StudyEntry(trial.number, trial._trial_id, planned, TrialState.RUNNING, attempt=attempt)
        self._index()[trial.number] = entry
        self._latest[planned.plan_key] = trial.number
        self.tune_to_number[tune_trial_id] = trial.number
        return entry

    def hand_out(self, entry: StudyEntry, tune_trial_id: str) -> None:
        """Give a running trial (an orphan of a killed driver) to a new Tune trial."""
        self.tune_to_number[tune_trial_id] = entry.number
        self.handle(entry).set_user_attr("tune_trial_id", tune_trial_id)

    def handle(self, entry: StudyEntry) -> optuna.trial.Trial:
        """A live handle on a RUNNING trial (Optuna has no public lookup by number for that)."""
        return optuna.trial.Trial(self.optuna, entry.trial_id)

    # ----------------------------------------------------------------------------------------------
    # results
    def _live_entry(self, tune_trial_id: str, config: dict[str, Any] | None) -> StudyEntry | None:
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
                entry = self.create(entry.planned, tune_trial_id, attempt=entry.attempt + 1)
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
        trial = self.handle(entry)
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
        self.tell(entry, state, values, reason)
        return status_from_optuna(state)

    def _final_values(self, entry: StudyEntry, result: dict[str, Any]) -> tuple[float | None, ...]:
        """Every objective's value at the trial's end; None for one that is missing or not finite."""
        if self.space.pruner.seed_aware:  # one objective (the space refuses pruners with several)
            values = [v for _, v in sorted(entry.seed_values.items())]
            return (sum(values) / len(values) if len(values) == len(entry.planned.seeds) else None,)
        return tuple(_finite(result.get(o.metric)) for o in self.space.objectives)

    def tell(
        self, entry: StudyEntry, state: TrialState, values: tuple[float, ...] | None, reason: str = ""
    ) -> None:
        if reason:
            self.handle(entry).set_user_attr("fail_reason", reason)
        if state == TrialState.COMPLETE:
            self.optuna.tell(entry.number, list(values or ()), skip_if_finished=True)
        else:
            self.optuna.tell(entry.number, state=state, skip_if_finished=True)
        entry.state = state
        entry.values = values
        log.debug("told Optuna trial %d: %s %s", entry.number, state.name, values)

    def fail_leftovers(self, reason: str) -> int:
        """Tell FAIL to every trial still RUNNING (only called when the whole sweep has ended)."""
        count = 0
        for entry in self.entries():
            if entry.state == TrialState.RUNNING:
                self.tell(entry, TrialState.FAIL, None, reason)
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
        return status_from_optuna(self.entry(number).state)

    def status_counts(self) -> dict[str, int]:
        """How many plan keys' newest attempts are in each status (what the closing line and the MLflow
        parent's summary count)."""
        counts: dict[str, int] = {}
        for entry in self.latest_entries():
            status = self.status_of(entry.number)
            counts[status] = counts.get(status, 0) + 1
        return counts

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

    # ----------------------------------------------------------------------------------------------
    # persistence of the Tune ↔ Optuna map (snapshotted with Tune's experiment state)
    def get_state(self) -> dict[str, Any]:
        return {"tune_to_number": dict(self.tune_to_number)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tune_to_number = {str(k): int(v) for k, v in state.get("tune_to_number", {}).items()}


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _user_attrs(planned: PlannedTrial, tune_trial_id: str, attempt: int) -> dict[str, Any]:
    """What an Optuna trial records about itself: its plan (key, stage, seeds, params), its seed, which
    attempt at that plan key it is, and the Tune trial running it (the index is rebuilt from these)."""
    return {**planned.to_config(), **_seed_attr(planned), "attempt": attempt, "tune_trial_id": tune_trial_id}


def _seed_attr(planned: PlannedTrial) -> dict[str, Any]:
    """The seed as its own user attribute, so Optuna's views (optuna-dashboard) show which seed a trial
    ran; a seed-aware trial runs several and keeps only the ``seeds`` list."""
    return {"seed": planned.seeds[0]} if len(planned.seeds) == 1 else {}
