"""Trial planning: which configurations run on which seeds, in which stage, under which stable key.

Why a separate planner: the same plan answers three questions — what ``--dry-run`` prints, what the
Tune searcher hands out next, and (after a crash) which planned trials already exist — so it must be a
pure, deterministic function of the space (and, for the confirmation stage, of the finished search
trials). Every planned trial gets a *plan key* that never changes across restarts; the Optuna trial,
the MLflow runs and the Parquet rows of that trial are all found again through it.

Stages:

* ``grid``    — grid mode without confirmation: every grid point × every seed.
* ``search``  — the exploring stage (random/optuna samples, or a grid followed by ``confirm``), run on
  ``search.seeds`` (by default the first seed only when a confirmation stage follows).
* ``confirm`` — the top-k configurations of the search stage, re-run on the seeds they have not run.

With the seed-aware ``wilcoxon`` pruner a trial is one configuration evaluated on all seeds in turn, so a
planned trial carries a tuple of seeds; otherwise it carries exactly one.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.config import RunConfig
from orchestrator.space import SweepSpace

__all__ = [
    "ConfigScore",
    "PlanKey",
    "PlannedTrial",
    "SweepPlan",
    "build_plan",
    "config_for",
    "confirm_trials",
    "rank_configs",
    "search_stage",
    "search_trials_for_config",
]


@dataclass(frozen=True)
class PlanKey:
    """A planned trial's stable name, built and read only here.

    ``g0003s42``: grid point 3 on seed 42; ``o0007s1``: the eighth sampled configuration on seed 1;
    ``c<config hash>s42``: a confirmation run; without ``s<seed>`` (``g0003``) a seed-aware trial that
    runs every seed in turn. ``config`` (``g0003``) names the configuration whatever the seed.
    """

    kind: str
    """:data:`GRID`, :data:`SAMPLED` or :data:`CONFIRM`."""
    ident: str
    seed: int | None = None

    GRID: ClassVar[str] = "g"
    SAMPLED: ClassVar[str] = "o"
    CONFIRM: ClassVar[str] = "c"
    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"([goc])([0-9a-f]+)(?:s(\d+))?")

    @classmethod
    def grid(cls, index: int, seed: int | None = None) -> PlanKey:
        return cls(cls.GRID, f"{index:04d}", seed)

    @classmethod
    def sampled(cls, index: int, seed: int | None = None) -> PlanKey:
        return cls(cls.SAMPLED, f"{index:04d}", seed)

    @classmethod
    def confirm(cls, config_hash: str, seed: int) -> PlanKey:
        return cls(cls.CONFIRM, config_hash, seed)

    @classmethod
    def parse(cls, text: str) -> PlanKey:
        match = cls._PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a plan key (g0003s42, o0007s1, c<hash>s42, g0003)")
        kind, ident, seed = match.groups()
        return cls(kind, ident, None if seed is None else int(seed))

    @property
    def config(self) -> str:
        """The configuration's part of the key (``g0003``)."""
        return f"{self.kind}{self.ident}"

    def with_seed(self, seed: int | None) -> PlanKey:
        return PlanKey(self.kind, self.ident, seed)

    def __str__(self) -> str:
        return self.config + ("" if self.seed is None else f"s{self.seed}")


@dataclass(frozen=True)
class PlannedTrial:
    """One Tune trial: a configuration (Optuna params) on one seed, or on all seeds in turn."""

    plan_key: str
    stage: str
    params: dict[str, Any]
    """Varied values (dotted run-config keys, plus ``arm``): the Optuna trial's params."""
    overrides: dict[str, Any]
    """Run-config overrides these params stand for (arm overrides expanded)."""
    seeds: tuple[int, ...]
    config_hash: str
    """Hash of the run configuration without its seed: seeds of one configuration share it."""

    def to_config(self) -> dict[str, Any]:
        """The Tune trial config (JSON-able) the trainable receives."""
        return {
            "plan_key": self.plan_key,
            "stage": self.stage,
            "params": dict(self.params),
            "overrides": dict(self.overrides),
            "seeds": list(self.seeds),
            "config_hash": self.config_hash,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PlannedTrial:
        return cls(
            plan_key=config["plan_key"],
            stage=config["stage"],
            params=dict(config["params"]),
            overrides=dict(config["overrides"]),
            seeds=tuple(config["seeds"]),
            config_hash=config["config_hash"],
        )


@dataclass
class SweepPlan:
    """What a sweep will run: fixed trials (grid) and/or the shape of the sampled stages."""

    space: SweepSpace
    fixed: list[PlannedTrial] = field(default_factory=list)
    """Trials known up front (grid mode); empty for random/optuna, whose configurations are sampled."""
    sampled_configs: int = 0
    """random/optuna: configurations the search stage samples."""
    confirm_configs: int = 0
    confirm_seeds: tuple[int, ...] = ()

    def trials_per_config(self) -> int:
        return 1 if self.space.pruner.seed_aware else len(self.space.search.seeds)

    def max_trials(self) -> int:
        """Upper bound on Tune trials (exact unless a stage is cut short)."""
        search = len(self.fixed) or self.sampled_configs * self.trials_per_config()
        return search + self.confirm_configs * len(self.confirm_seeds)

    def max_engine_runs(self) -> int:
        """Upper bound on engine runs (one per seed a configuration trains on)."""
        if self.space.pruner.seed_aware:
            configs = len(self.fixed) or self.sampled_configs
            return configs * len(self.space.seeds)
        return self.max_trials()


def search_stage(space: SweepSpace) -> str:
    """The stage of the exploring trials: ``grid`` for a grid without confirmation, else ``search``."""
    return "grid" if space.search.mode == "grid" and not space.confirm else "search"


def config_for(space: SweepSpace, base: RunConfig, overrides: dict[str, Any], seed: int) -> RunConfig:
    """The full run configuration of one engine run."""
    return base.with_overrides({**overrides, "seed": seed}, source=f"{space.path}: trial")


def _planned(
    space: SweepSpace, base: RunConfig, key: str, stage: str, params: dict[str, Any], seeds: Sequence[int]
) -> PlannedTrial:
    overrides = space.overrides_for(params)
    config_hash = config_for(space, base, overrides, seeds[0]).config_hash()
    return PlannedTrial(key, stage, dict(params), overrides, tuple(seeds), config_hash)


def search_trials_for_config(
    space: SweepSpace, base: RunConfig, config: PlanKey, params: dict[str, Any], stage: str
) -> list[PlannedTrial]:
    """The search-stage trials of one configuration (``config``: its key without a seed): one per
    search seed, or one over all seeds."""
    if space.pruner.seed_aware:
        return [_planned(space, base, str(config), stage, params, space.seeds)]
    keys = {seed: str(config.with_seed(seed)) for seed in space.search.seeds}
    return [_planned(space, base, keys[seed], stage, params, [seed]) for seed in space.search.seeds]


def build_plan(space: SweepSpace) -> SweepPlan:
    """The plan of a space (grid trials enumerated; sampled stages described by their sizes)."""
    base = space.base_config()
    plan = SweepPlan(space=space)
    stage = search_stage(space)
    if space.search.mode == "grid":
        for index, point in enumerate(space.grid_points()):
            plan.fixed.extend(search_trials_for_config(space, base, PlanKey.grid(index), point, stage))
        configs = space.grid_size()
    else:
        plan.sampled_configs = int(space.search.samples or 0)
        configs = plan.sampled_configs
    if space.confirm:
        plan.confirm_configs = min(space.confirm.top_k or configs, configs)
        plan.confirm_seeds = tuple(s for s in space.seeds if s not in space.search.seeds)
    return plan


# --------------------------------------------------------------------------------------------------
# confirmation stage


@dataclass(frozen=True)
class ConfigScore:
    """A configuration's search-stage result over its completed seeds."""

    config_hash: str
    params: dict[str, Any]
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


def rank_configs(
    finished: Iterable[tuple[str, dict[str, Any], float]], metric_mode: str, all_seeds: int | None = None
) -> list[ConfigScore]:
    """Group ``(config_hash, params, value)`` of completed trials; best mean first.

    With ``all_seeds``, configurations measured on that many seeds rank before those measured on
    fewer (a confirmed mean over every seed beats a single lucky seed). Ties are broken by the config
    hash so the ranking — and therefore the confirmation plan — is the same every time it is
    recomputed (after a restart, for instance).
    """
    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for config_hash, params, value in finished:
        if value is None or not math.isfinite(value):
            continue
        groups.setdefault(config_hash, (params, []))[1].append(float(value))
    scores = [ConfigScore(h, p, tuple(v)) for h, (p, v) in groups.items()]
    sign = -1.0 if metric_mode == "max" else 1.0
    return sorted(
        scores,
        key=lambda s: (all_seeds is not None and len(s.values) < all_seeds, sign * s.mean, s.config_hash),
    )


def front_configs(
    finished: Iterable[tuple[str, dict[str, Any], Sequence[float] | None]], modes: Sequence[str]
) -> list[ConfigScore]:
    """Group ``(config_hash, params, objective values)`` of completed trials and keep the configurations
    on the Pareto front of their mean objective vectors (``orchestrator.front``), best first by the first
    objective (ties by config hash, so the confirmation plan is the same every time it is recomputed).
    Each score's ``values`` are its first objective's per-seed values, as in :func:`rank_configs`."""
    from orchestrator.front import pareto_mask  # noqa: PLC0415 — numpy only where a front is taken

    groups: dict[str, tuple[dict[str, Any], list[tuple[float, ...]]]] = {}
    for config_hash, params, values in finished:
        if values is None or not all(math.isfinite(v) for v in values):
            continue
        groups.setdefault(config_hash, (params, []))[1].append(tuple(float(v) for v in values))
    if not groups:
        return []
    hashes = sorted(groups)
    means = [[statistics.fmean(column) for column in zip(*groups[h][1], strict=True)] for h in hashes]
    on_front = pareto_mask(means, modes)
    front = [
        ConfigScore(h, groups[h][0], tuple(v[0] for v in groups[h][1]))
        for h, on in zip(hashes, on_front, strict=True)
        if on
    ]
    sign = -1.0 if modes[0] == "max" else 1.0
    return sorted(front, key=lambda s: (sign * s.mean, s.config_hash))


def confirm_trials(space: SweepSpace, ranking: Sequence[ConfigScore]) -> list[PlannedTrial]:
    """The confirmation stage: the top-k configurations (with several objectives: those of the search
    stage's Pareto front, at most ``top_k`` of them) on every seed the search stage did not use."""
    if not space.confirm:
        return []
    base = space.base_config()
    seeds = [s for s in space.seeds if s not in space.search.seeds]
    trials = []
    for score in ranking[: space.confirm.top_k]:
        for seed in seeds:
            key = str(PlanKey.confirm(score.config_hash, seed))
            trials.append(_planned(space, base, key, "confirm", score.params, [seed]))
    return trials
