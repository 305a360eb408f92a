"""Sweep definitions: the YAML schema of ``search_spaces/*.yaml``, parsed into typed, validated values.

Why a schema of our own instead of handing YAML to Ray Tune: a sweep may run for days on a cluster, so
every mistake a user can make in the file (an unknown key, a range the wrong way round, a model name
that does not exist, a GPU fraction that cannot pack) must surface *before* anything launches, with the
file, the key path and the allowed values in the message. Each varied point is also checked by the
engine's own :meth:`engine.config.RunConfig.validate`, so a sweep cannot plan a trial that ``spikesweep
train`` would reject.

A space file, top to bottom (every key but ``name`` is optional)::

    name: smoke                      # default sweep name (directory under --storage)
    description: ...                 # free text, shown by --dry-run
    preset: quick                    # engine preset to start from (engine/presets/<name>.yaml)
    base: {epochs: 3, model: {width: 0.25}}   # run-config keys on top of the preset (nested or dotted)
    search:
      mode: grid                     # grid | random | optuna
      samples: 16                    # random/optuna: configurations to try
      sampler: tpe                   # optuna mode: tpe | random
      sampler_seed: 0
      seeds: 1                       # seeds per configuration in the search stage (first N of `seeds`)
    parameters:                      # dotted run-config keys → values
      method.beta: [0.0, 0.5]                          # a list: grid values / categorical choice
      optim.lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
      T: {type: int, low: 4, high: 12}
      sliding.schedule: {type: choice, values: [poly, cosine]}
      sliding.pow: {type: uniform, low: 1.0, high: 5.0}
    arms:                            # named sets of overrides, crossed with `parameters`
      - {name: full, set: {}}
      - {name: no_hsv, set: {method.static_channel: blue}}
    seeds: [42, 1024, 90210]         # or a count: 3 → [0, 1, 2]
    confirm: {top_k: 3}              # re-run the best k configurations on every seed (stage "confirm")
    pruner: {name: median, n_startup_trials: 4}        # none | median | successive_halving |
                                                       # hyperband | wilcoxon | asha
    objective: {metric: best_test_top1, mode: max}   # or a list: several objectives, a Pareto search
                                                     # (e.g. + {metric: best_epoch_energy_uj, mode: min})
    resources: {cpu: 1, gpu: 0.25}   # per trial; a GPU fraction must divide 1
    max_concurrent_trials: 4         # default: what the cluster fits
    max_failures: 2                  # retries of a crashed trial, from its last checkpoint
    mlflow: {enabled: true, tracking_uri: null, experiment: null}
    progress: {interval_s: 30}
    report: {baseline: {method.beta: 0.0}, baseline_name: "no transfer loss",   # for spikesweep report
             kind: standard}          # standard | data_ratio | ablation (default: from the space)
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.config import RunConfig, all_keys, flatten, parse_assignments, unflatten
from engine.errors import ConfigError
from engine.registry import close_matches
from engine.training.records import ALPHA_PREFIX, BEST_TEST_TOP1
from engine.typed import Rule, build, rule
from engine.yamlio import read_yaml_file

__all__ = [
    "ARM_KEY",
    "MAX_GRID_POINTS",
    "MAX_SEEDS",
    "Objective",
    "DATA_RATIO_KEY",
    "REPORT_KINDS",
    "PARAM_TYPES",
    "PRUNERS",
    "SEARCH_MODES",
    "Arm",
    "ConfirmSpec",
    "MlflowSpec",
    "Param",
    "PrunerSpec",
    "Resources",
    "SearchSpec",
    "SpaceError",
    "SweepSpace",
    "check_name",
    "load_space",
    "parse_space",
]

SEARCH_MODES = ("grid", "random", "optuna")
SAMPLERS = ("tpe", "nsga2", "random")
PARAM_TYPES = ("choice", "uniform", "loguniform", "int")
OBJECTIVE_MODES = ("max", "min")
REPORT_KINDS = ("standard", "data_ratio", "ablation")
"""What ``spikesweep report`` draws: the ranked table only, the paper's data-ratio curve or ablation table."""
DATA_RATIO_KEY = "data.traindata_ratio"
"""The run-config key a data-ratio study varies: the fraction of the event training recordings kept."""
ARM_KEY = "arm"
"""The name under which the chosen arm appears among a trial's varied keys and Optuna params."""

# Each pruner's options, their defaults and what they accept. ``None`` as a default means "derived from
# the run" (e.g. the epoch count). ``asha`` is Ray's scheduler; every other one is Optuna's own pruner.
_COUNT = rule(ge=0)
_POSITIVE_COUNT = rule(ge=1)
_RESOURCE = rule(ge=1, also=("auto",))
"""An integer ≥ 1 or ``"auto"``: annotated ``int`` so that no other string passes."""
_FACTOR = rule(ge=2)


@dataclass(frozen=True)
class NoPrunerOptions:
    pass


@dataclass(frozen=True)
class MedianOptions:
    n_startup_trials: int = field(default=5, metadata=_COUNT)
    n_warmup_steps: int = field(default=0, metadata=_COUNT)
    interval_steps: int = field(default=1, metadata=_POSITIVE_COUNT)
    n_min_trials: int = field(default=1, metadata=_COUNT)


@dataclass(frozen=True)
class SuccessiveHalvingOptions:
    min_resource: int = field(default="auto", metadata=_RESOURCE)  # type: ignore[assignment]
    reduction_factor: int | float = field(default=4, metadata=_FACTOR)
    min_early_stopping_rate: int = field(default=0, metadata=_COUNT)
    bootstrap_count: int = field(default=0, metadata=_COUNT)


@dataclass(frozen=True)
class HyperbandOptions:
    min_resource: int = field(default=1, metadata=_RESOURCE)
    max_resource: int = field(default=None, metadata=_RESOURCE)  # type: ignore[assignment]
    """Default ``None``: the run's epoch count (a null in the file is refused, as for any integer)."""
    reduction_factor: int | float = field(default=3, metadata=_FACTOR)
    bootstrap_count: int = field(default=0, metadata=_COUNT)


@dataclass(frozen=True)
class WilcoxonOptions:
    p_threshold: float = field(default=0.1, metadata=rule(gt=0, lt=1))
    n_startup_steps: int = field(default=2, metadata=_COUNT)


@dataclass(frozen=True)
class AshaOptions:
    grace_period: int = field(default=1, metadata=_POSITIVE_COUNT)
    reduction_factor: int | float = field(default=4, metadata=_FACTOR)
    brackets: int = field(default=1, metadata=_POSITIVE_COUNT)


PRUNERS: dict[str, type] = {
    "none": NoPrunerOptions,
    "median": MedianOptions,
    "successive_halving": SuccessiveHalvingOptions,
    "hyperband": HyperbandOptions,
    "wilcoxon": WilcoxonOptions,
    "asha": AshaOptions,
}
"""Pruner name → the dataclass of its options (``pruner: {name: median, n_startup_trials: 4}``)."""

_TOP_KEYS = (
    "name",
    "description",
    "preset",
    "base",
    "search",
    "parameters",
    "arms",
    "seeds",
    "confirm",
    "pruner",
    "objective",
    "resources",
    "max_concurrent_trials",
    "max_failures",
    "mlflow",
    "progress",
    "report",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_SEEDS = 10_000
MAX_GRID_POINTS = 100_000
MAX_RUNS = 1_000_000
"""Limits checked arithmetically, before any list of seeds, grid points or runs is built."""
MAX_TRIALS_PER_GPU = 64
"""A GPU fraction must be 1/n with n ≤ 64: beyond that a trial's memory share is a few hundred MB."""


def check_name(name: Any, where: str) -> str:
    """A sweep or arm name: it becomes a directory name, a Slurm job name and a shell word, so only
    letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit (no ``/``, no ``..``)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SpaceError(
            f"{where}: {name!r} must be a name of 1–100 letters, digits, '_', '.' or '-' starting with a "
            "letter or digit"
        )
    return name


# Keys a resumed sweep may change: they affect neither which trials run nor what they compute.
_RESUME_SAFE_KEYS = ("description", "progress", "report")


class SpaceError(ConfigError):
    """A problem in a sweep definition; the message names the file, the key path and what is allowed."""


# --------------------------------------------------------------------------------------------------
# typed pieces


@dataclass(frozen=True)
class Param:
    """One varied run-config key (or the arm choice) and the values it may take."""

    key: str
    kind: str
    """``grid`` (explicit list), ``choice``, ``uniform``, ``loguniform`` or ``int``."""
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("grid", "choice") or (self.kind == "int" and not self.log)

    def count(self) -> int:
        """How many values :meth:`grid_values` has, computed without building the list."""
        if self.kind in ("grid", "choice"):
            return len(self.values)
        if self.kind == "int" and self.low is not None and self.high is not None:
            return max(0, (int(self.high) - int(self.low)) // int(self.step or 1) + 1)
        raise SpaceError(f"parameter {self.key!r} ({self.kind}) has no finite list of values")

    def grid_values(self) -> list[Any]:
        """Every value of a discrete parameter, in file order (an ``int`` range is expanded)."""
        if self.kind in ("grid", "choice"):
            return list(self.values)
        if self.kind == "int" and self.low is not None and self.high is not None:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        raise SpaceError(f"parameter {self.key!r} ({self.kind}) has no finite list of values")

    def boundary_values(self) -> list[Any]:
        """The values worth validating: every choice, or both ends of a range."""
        if self.kind in ("grid", "choice"):
            return list(self.values)
        low, high = self.low, self.high
        if self.kind == "int":
            return [int(low), int(high)]  # type: ignore[arg-type]
        return [float(low), float(high)]  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.kind in ("grid", "choice"):
            return "[" + ", ".join(_short(v) for v in self.values) + "]"
        step = f" step {_short(self.step)}" if self.step else ""
        scale = " log" if self.log and self.kind != "loguniform" else ""
        return f"{self.kind} {_short(self.low)}…{_short(self.high)}{step}{scale}"


@dataclass(frozen=True)
class Arm:
    """A named set of run-config overrides (one ablation arm); arms are crossed with the parameters."""

    name: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class SearchSpec:
    mode: str = "grid"
    samples: int | None = None
    """random/optuna: how many configurations the search stage tries."""
    sampler: str = "tpe"
    sampler_seed: int = 0
    n_startup_trials: int | None = None
    """TPE's random start-up trials (default: a third of ``samples``, at least 2, at most 10)."""
    population_size: int | None = None
    """NSGA-II's generation size (default: a third of ``samples``, at least 2, at most 50)."""
    seeds: tuple[int, ...] = ()
    """Seeds every configuration runs on in the search stage."""


@dataclass(frozen=True)
class ConfirmSpec:
    top_k: int | None
    """How many configurations the confirmation stage re-runs on every seed. With one objective: the
    best ``top_k`` by mean. With several: the search stage's Pareto front, all of it when ``None``, else
    its ``top_k`` best by the first objective."""


@dataclass(frozen=True)
class Objective:
    """One objective of the sweep: a per-epoch metric of the trainer, read at a trial's last epoch."""

    metric: str
    mode: str
    """``max`` or ``min``."""

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


@dataclass(frozen=True)
class PrunerSpec:
    name: str = "none"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_optuna(self) -> bool:
        return self.name not in ("none", "asha")

    @property
    def seed_aware(self) -> bool:
        """``wilcoxon``: a trial runs one configuration over all seeds; steps are seeds, not epochs."""
        return self.name == "wilcoxon"


@dataclass(frozen=True)
class Resources:
    cpu: float = field(default=1.0, metadata=rule(gt=0))
    gpu: float = field(default=0.0, metadata=rule(ge=0))
    """A fraction that divides 1 (1/n, n ≤ ``MAX_TRIALS_PER_GPU``) or a whole number of GPUs."""

    def as_ray(self) -> dict[str, float]:
        return {"cpu": self.cpu, "gpu": self.gpu}


MLFLOW_CHECKPOINTS = ("none", "best")
"""The values of ``mlflow.log_checkpoint``."""


@dataclass(frozen=True)
class MlflowSpec:
    enabled: bool = True
    tracking_uri: str | None = field(
        default=None, metadata=rule(nonempty=True, what="a tracking URI (e.g. http://host:5000)")
    )
    """``None``: SQLite in the sweep directory (``sqlite:///<sweep>/mlflow.db``)."""
    experiment: str | None = field(default=None, metadata=rule(nonempty=True, what="an experiment name"))
    """``None``: the sweep name."""
    log_checkpoint: str = field(default="none", metadata=rule(choices=MLFLOW_CHECKPOINTS))
    """``best``: each finished run's best-epoch checkpoint is also a child-run artifact (``best/``), so
    a user with only the tracking server can download and evaluate the weights. Off by default: a
    checkpoint is the model's size, per run, in the artifact store."""


@dataclass(frozen=True)
class ProgressSpec:
    interval_s: float = field(default=30.0, metadata=rule(gt=0))
    """Seconds between two prints of the live trial table."""


@dataclass(frozen=True)
class SweepSpace:
    """A validated sweep definition."""

    path: Path
    name: str
    description: str
    preset: str | None
    base_overrides: dict[str, Any]
    """Flat dotted-key overrides on top of the preset (or the RunConfig defaults)."""
    search: SearchSpec
    parameters: tuple[Param, ...]
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    confirm: ConfirmSpec | None
    pruner: PrunerSpec
    metric: str
    """The first objective's metric: what rankings, pruners and one-line summaries use."""
    metric_mode: str
    resources: Resources
    max_concurrent_trials: int | None
    max_failures: int
    mlflow: MlflowSpec
    progress_interval_s: float
    raw: dict[str, Any]
    """The parsed YAML, for hashing and for the copy kept in the sweep directory."""
    cli_overrides: tuple[str, ...] = ()
    """``sweep --set`` values already merged into ``base`` (and into ``raw``)."""
    objectives: tuple[Objective, ...] = ()
    """Every objective, the first being ``metric``/``metric_mode`` (filled in from them when empty)."""

    def __post_init__(self) -> None:
        if not self.objectives:
            object.__setattr__(self, "objectives", (Objective(self.metric, self.metric_mode),))

    @property
    def multi_objective(self) -> bool:
        """Several objectives: the Optuna study has several directions and the result is a Pareto front."""
        return len(self.objectives) > 1

    def text(self) -> str:
        """What the sweep directory keeps as ``space.yaml``: the file as written, or — with ``--set`` —
        the merged space, headed by the command-line values it came from."""
        if not self.cli_overrides:
            return self.path.read_text()
        header = f"# {self.path} with --set {' '.join(self.cli_overrides)}\n"
        return header + yaml.safe_dump(self.raw, sort_keys=False, allow_unicode=True)

    # ----------------------------------------------------------------------------------------------
    def base_config(self) -> RunConfig:
        """The run config every trial starts from (preset, then ``base``), progress bars off.

        Built once per space (it reads the preset file); callers derive trial configs from it with
        ``with_overrides``, which returns new objects, so the shared one is never changed.
        """
        cached = self.__dict__.get("_base_config")
        if cached is None:
            config = load_preset(self.preset, self.path) if self.preset else RunConfig()
            overrides = {**self.base_overrides, "progress": False}
            cached = config.with_overrides(overrides, source=f"{self.path}: base")
            object.__setattr__(self, "_base_config", cached)  # a cache on a frozen dataclass
        return cached

    def all_params(self) -> tuple[Param, ...]:
        """The parameters plus the arm choice (as a categorical ``arm`` parameter) when arms exist."""
        if not self.arms:
            return self.parameters
        kind = "grid" if self.search.mode == "grid" else "choice"
        arm = Param(key=ARM_KEY, kind=kind, values=tuple(a.name for a in self.arms))
        return (arm, *self.parameters)

    def varied_keys(self) -> list[str]:
        """Run-config keys the sweep changes between trials (arm overrides included), sorted."""
        keys = {p.key for p in self.parameters}
        for arm in self.arms:
            keys.update(arm.overrides)
        return sorted(keys)

    def overrides_for(self, params: dict[str, Any]) -> dict[str, Any]:
        """Run-config overrides of one point: its arm's overrides, then the parameter values."""
        overrides: dict[str, Any] = {}
        if ARM_KEY in params:
            overrides.update(self.arm(params[ARM_KEY]).overrides)
        overrides.update({k: v for k, v in params.items() if k != ARM_KEY})
        return overrides

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise SpaceError(f"{self.path}: unknown arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    def grid_points(self) -> Iterator[dict[str, Any]]:
        """The cross product of every discrete parameter, in file order (last key varies fastest)."""
        params = self.all_params()
        for combo in itertools.product(*(p.grid_values() for p in params)):
            yield {p.key: v for p, v in zip(params, combo, strict=True)}

    def grid_size(self) -> int:
        """Points of the grid, computed arithmetically: a huge axis is refused before it is expanded."""
        return math.prod(p.count() for p in self.all_params())

    def max_T(self) -> int:
        """The largest time-step count any trial can have (fixes the ``alpha_*`` columns of the results)."""
        base_T = self.base_config().T
        candidates = [base_T]
        for param in self.parameters:
            if param.key == "T":
                candidates.extend(int(v) for v in param.boundary_values())
        for arm in self.arms:
            if "T" in arm.overrides:
                candidates.append(int(arm.overrides["T"]))
        return max(candidates)

    def canonical(self) -> dict[str, Any]:
        """The definition as data, without keys that may change on resume (used for the space hash)."""
        return {k: v for k, v in self.raw.items() if k not in _RESUME_SAFE_KEYS}

    def space_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# loading


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpace:
    """Read and validate a space file; :class:`SpaceError` names the file, key path and allowed values.

    ``overrides`` (``sweep --set KEY=VALUE``) change the space's ``base`` before validation, so they are
    part of the space and of its hash: the same space with another ``--set`` is another sweep.
    """
    path = Path(path)
    raw = read_yaml_file(path, "search-space file", SpaceError)
    if overrides and isinstance(raw, dict):
        values = parse_assignments(list(overrides), "--set")
        RunConfig().with_overrides(values, source="--set")  # unknown keys: train's did-you-mean message
        base = raw.get("base") or {}
        if not isinstance(base, dict):
            raise SpaceError(f"{path}: base: must be a mapping of run-config keys, got {base!r}")
        raw = {**raw, "base": unflatten({**flatten(base), **values})}
    space = parse_space(raw, path)
    return dataclasses.replace(space, cli_overrides=tuple(overrides)) if overrides else space


def parse_space(raw: Any, path: str | Path = "<space>") -> SweepSpace:
    """Validate an already-loaded mapping (``path`` is used in messages and to find relative files)."""
    return _Parser(Path(path)).parse(raw)


def load_preset(name: str, source: Path | str = "<space>") -> RunConfig:
    """The engine preset ``engine/presets/<name>.yaml`` as a RunConfig (error names the space file)."""
    from engine.config import list_presets  # noqa: PLC0415

    if name not in list_presets():
        raise SpaceError(f"{source}: preset: unknown preset {name!r}; allowed: {', '.join(list_presets())}")
    return RunConfig.from_preset(name)


class _Parser:
    """One parse of one file: collects the path for messages, raises on the first structural problem."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> SpaceError:
        return SpaceError(f"{self.path}: {key}: {message}")

    # ----------------------------------------------------------------------------------------------
    def parse(self, raw: Any) -> SweepSpace:
        if not isinstance(raw, dict):
            raise SpaceError(
                f"{self.path}: a search space must be a mapping of keys, got {type(raw).__name__}"
            )
        self._check_keys(raw, _TOP_KEYS, "")
        name = check_name(raw.get("name", self.path.stem), f"{self.path}: name")
        description = self._typed(raw, "description", str, "", "")
        preset = raw.get("preset")
        if preset is not None and not isinstance(preset, str):
            raise self.fail("preset", f"{preset!r} must be a preset name (a string)")
        base = raw.get("base") or {}
        if not isinstance(base, dict):
            raise self.fail("base", f"must be a mapping of run-config keys, got {base!r}")
        base_overrides = flatten(base)
        self._check_config_keys(base_overrides, "base")

        seeds = self._seeds(raw.get("seeds", [42]))
        parameters = self._parameters(raw.get("parameters") or {}, mode=self._mode(raw))
        arms = self._arms(raw.get("arms"))
        objective = raw.get("objective")
        objectives = self._objectives({} if objective is None else objective)
        pruner = self._pruner(raw.get("pruner"))
        if len(objectives) > 1 and pruner.name != "none":
            raise self.fail(
                "pruner",
                f"{pruner.name!r} cannot judge several objectives (Optuna's pruners compare one "
                "intermediate value per step, Ray's ASHA one metric); allowed with a list of "
                "objectives: none",
            )
        confirm = self._confirm(raw.get("confirm"), pruner, multi=len(objectives) > 1)
        search = self._search(raw.get("search") or {}, seeds, confirm, pruner, parameters, arms)
        resources = self._resources(raw.get("resources") or {})
        max_concurrent = raw.get("max_concurrent_trials")
        if max_concurrent is not None and not _is_int(max_concurrent, minimum=1):
            raise self.fail("max_concurrent_trials", f"{max_concurrent!r} must be an integer ≥ 1")
        max_failures = raw.get("max_failures", 2)
        if not _is_int(max_failures, minimum=0):
            raise self.fail("max_failures", f"{max_failures!r} must be an integer ≥ 0")
        mlflow = self._mlflow(raw.get("mlflow") or {})
        progress = raw.get("progress") or {}
        if not isinstance(progress, dict):
            raise self.fail("progress", f"must be a mapping, got {progress!r}")
        interval = self._section(ProgressSpec, progress, "progress").interval_s
        self._report(raw.get("report"), parameters, arms)

        space = SweepSpace(
            path=self.path,
            name=name,
            description=description.strip(),
            preset=preset,
            base_overrides=base_overrides,
            search=search,
            parameters=parameters,
            arms=arms,
            seeds=seeds,
            confirm=confirm,
            pruner=pruner,
            metric=objectives[0].metric,
            metric_mode=objectives[0].mode,
            resources=resources,
            max_concurrent_trials=max_concurrent,
            max_failures=max_failures,
            mlflow=mlflow,
            progress_interval_s=float(interval),
            raw=_normalised(raw, name, seeds),
            objectives=objectives,
        )
        self._check_run_configs(space)
        return space

    # ----------------------------------------------------------------------------------------------
    # sections
    def _mode(self, raw: dict[str, Any]) -> str:
        search = raw.get("search") or {}
        if not isinstance(search, dict):
            raise self.fail("search", f"must be a mapping, got {search!r}")
        mode = search.get("mode", "grid")
        if mode not in SEARCH_MODES:
            raise self.fail(
                "search.mode", f"{mode!r} is not a search mode; allowed: {', '.join(SEARCH_MODES)}"
            )
        return mode

    def _seeds(self, value: Any) -> tuple[int, ...]:
        if _is_int(value, minimum=1):
            if value > MAX_SEEDS:
                raise self.fail("seeds", f"{value} seeds; at most {MAX_SEEDS}")
            return tuple(range(value))
        if not isinstance(value, list) or not value:
            raise self.fail("seeds", f"{value!r} must be a non-empty list of integers ≥ 0, or a count ≥ 1")
        for i, seed in enumerate(value):
            if not _is_int(seed, minimum=0):
                raise self.fail(f"seeds[{i}]", f"{seed!r} must be an integer ≥ 0")
        if len(value) > MAX_SEEDS:
            raise self.fail("seeds", f"{len(value)} seeds; at most {MAX_SEEDS}")
        if len(set(value)) != len(value):
            raise self.fail("seeds", f"{value!r} lists a seed twice")
        return tuple(value)

    def _parameters(self, value: Any, mode: str) -> tuple[Param, ...]:
        if not isinstance(value, dict):
            raise self.fail("parameters", f"must be a mapping of run-config keys to values, got {value!r}")
        params = []
        valid = set(all_keys())
        for key, spec in value.items():
            where = f"parameters.{key}"
            if not isinstance(key, str) or key not in valid:
                raise self.fail(where, _unknown(str(key), sorted(valid), "run-config key"))
            if key == "seed":
                raise self.fail(where, "vary seeds with the top-level `seeds:` list, not as a parameter")
            params.append(self._param(key, spec, where, mode))
        return tuple(params)

    def _param(self, key: str, spec: Any, where: str, mode: str) -> Param:
        if isinstance(spec, list):
            if not spec:
                raise self.fail(where, "empty list: a parameter needs at least one value")
            self._check_scalars(spec, where)
            return Param(key=key, kind="grid" if mode == "grid" else "choice", values=tuple(spec))
        if not isinstance(spec, dict):
            raise self.fail(
                where,
                f"{spec!r} must be a list of values or a mapping with `type:` ({', '.join(PARAM_TYPES)})",
            )
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise self.fail(
                f"{where}.type", f"{kind!r} is not a parameter type; allowed: {', '.join(PARAM_TYPES)}"
            )
        if kind == "choice":
            self._check_keys(spec, ("type", "values"), where)
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise self.fail(f"{where}.values", f"{values!r} must be a non-empty list")
            self._check_scalars(values, f"{where}.values")
            return Param(key=key, kind="grid" if mode == "grid" else "choice", values=tuple(values))
        allowed = ("type", "low", "high", "step") + (("log",) if kind == "int" else ())
        self._check_keys(spec, allowed, where)
        low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
        number = _is_int if kind == "int" else _is_number
        what = "an integer" if kind == "int" else "a number"
        for name, v in (("low", low), ("high", high)):
            if not number(v):
                raise self.fail(f"{where}.{name}", f"{v!r} must be {what}")
        if low >= high:
            raise self.fail(where, f"low = {low} must be < high = {high}")
        log = bool(spec.get("log", False)) or kind == "loguniform"
        if log and low <= 0:
            raise self.fail(
                f"{where}.low", f"{low} must be > 0 for a log-scaled range (log of ≤ 0 is undefined)"
            )
        if step is not None:
            if not number(step) or step <= 0:
                raise self.fail(f"{where}.step", f"{step!r} must be {what} > 0")
            if log:
                raise self.fail(f"{where}.step", "a log-scaled range cannot have a step")
        if mode == "grid" and kind != "int":
            raise self.fail(
                where,
                f"a continuous range ({kind}) has no grid; in grid mode give a list of values "
                f"(or an int range), or use search.mode random / optuna",
            )
        if mode == "grid" and log:
            raise self.fail(f"{where}.log", "a log-scaled int range has no grid; give a list of values")
        return Param(
            key=key,
            kind=kind,
            low=float(low) if kind != "int" else int(low),
            high=float(high) if kind != "int" else int(high),
            step=step,
            log=log,
        )

    def _arms(self, value: Any) -> tuple[Arm, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            raise self.fail("arms", f"{value!r} must be a non-empty list of {{name: ..., set: {{...}}}}")
        arms = []
        for i, item in enumerate(value):
            where = f"arms[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, f"{item!r} must be a mapping with `name` and `set`")
            self._check_keys(item, ("name", "set"), where)
            name = item.get("name")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise self.fail(
                    f"{where}.name", f"{name!r} must be a name of letters, digits, '_', '.' or '-'"
                )
            if any(a.name == name for a in arms):
                raise self.fail(f"{where}.name", f"arm {name!r} is defined twice")
            overrides = item.get("set") or {}
            if not isinstance(overrides, dict):
                raise self.fail(f"{where}.set", f"{overrides!r} must be a mapping of run-config keys")
            flat = flatten(overrides)
            self._check_config_keys(flat, f"{where}.set")
            if "seed" in flat:
                raise self.fail(f"{where}.set.seed", "arms cannot set the seed; use the top-level `seeds:`")
            arms.append(Arm(name=name, overrides=flat))
        return tuple(arms)

    def _pruner(self, value: Any) -> PrunerSpec:
        if value is None:
            return PrunerSpec()
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise self.fail("pruner", f"{value!r} must be a pruner name or a mapping with `name`")
        name = value.get("name", "none")
        if name not in PRUNERS:
            raise self.fail("pruner.name", f"{name!r} is not a pruner; allowed: {', '.join(PRUNERS)}")
        options = {k: v for k, v in value.items() if k != "name"}
        built = build(PRUNERS[name], options, _PrunerStyle(self, name), "pruner.")
        merged = dataclasses.asdict(built)
        return PrunerSpec(name=name, options=merged)

    def _report(self, value: Any, parameters: tuple[Param, ...], arms: tuple[Arm, ...]) -> None:
        """``report: {baseline: {KEY: VALUE}, baseline_name: ...}``: read by ``spikesweep report`` only."""
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail("report", f"{value!r} must be a mapping like {{baseline: {{method.beta: 0.0}}}}")
        self._check_keys(value, ("baseline", "baseline_name", "kind"), "report")
        kind = value.get("kind")
        if kind is not None and kind not in REPORT_KINDS:
            raise self.fail(
                "report.kind", f"{kind!r} is not a report kind; allowed: {', '.join(REPORT_KINDS)}"
            )
        if kind == "data_ratio" and DATA_RATIO_KEY not in {p.key for p in parameters}:
            raise self.fail(
                "report.kind",
                f"a data_ratio report needs the fractions: `parameters: {{{DATA_RATIO_KEY}: [...]}}`",
            )
        name = value.get("baseline_name")
        if name is not None and not isinstance(name, str):
            raise self.fail("report.baseline_name", f"{name!r} must be a string")
        baseline = value.get("baseline") or {}
        if not isinstance(baseline, dict):
            raise self.fail("report.baseline", f"{baseline!r} must be a mapping of varied keys to values")
        valid = {p.key for p in parameters} | {k for a in arms for k in a.overrides}
        if arms:
            valid.add(ARM_KEY)
        for key, wanted in baseline.items():
            if key not in valid:
                raise self.fail(f"report.baseline.{key}", _unknown(str(key), sorted(valid), "varied key"))
            if key == ARM_KEY and wanted not in [a.name for a in arms]:
                names = ", ".join(a.name for a in arms)
                raise self.fail(f"report.baseline.{key}", f"unknown arm {wanted!r}; arms: {names}")

    def _confirm(self, value: Any, pruner: PrunerSpec, multi: bool = False) -> ConfirmSpec | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail("confirm", f"{value!r} must be a mapping like {{top_k: 3}}")
        self._check_keys(value, ("top_k",), "confirm")
        top_k = value.get("top_k")
        if not (_is_int(top_k, minimum=1) or (multi and top_k is None)):
            need = " (or absent: the whole Pareto front)" if multi else ""
            raise self.fail("confirm.top_k", f"{top_k!r} must be an integer ≥ 1{need}")
        if pruner.seed_aware:
            raise self.fail(
                "confirm",
                "the wilcoxon pruner already runs every configuration over all seeds; "
                "drop `confirm` or choose another pruner",
            )
        return ConfirmSpec(top_k=top_k)

    def _search(
        self,
        value: dict[str, Any],
        seeds: tuple[int, ...],
        confirm: ConfirmSpec | None,
        pruner: PrunerSpec,
        parameters: tuple[Param, ...],
        arms: tuple[Arm, ...],
    ) -> SearchSpec:
        self._check_keys(
            value,
            ("mode", "samples", "sampler", "sampler_seed", "n_startup_trials", "population_size", "seeds"),
            "search",
        )
        mode = value.get("mode", "grid")
        samples = value.get("samples")
        if mode == "grid":
            if samples is not None:
                raise self.fail(
                    "search.samples", "grid mode runs every point; `samples` is for random/optuna"
                )
        elif not _is_int(samples, minimum=1):
            raise self.fail(
                "search.samples", f"{samples!r}: {mode} mode needs the number of configurations (≥ 1)"
            )
        sampler = value.get("sampler", "tpe" if mode == "optuna" else "random")
        if mode == "optuna" and sampler not in SAMPLERS:
            raise self.fail("search.sampler", f"{sampler!r} is not a sampler; allowed: {', '.join(SAMPLERS)}")
        if mode != "optuna" and "sampler" in value:
            raise self.fail("search.sampler", f"only optuna mode takes a sampler (mode is {mode})")
        sampler_seed = value.get("sampler_seed", 0)
        if not _is_int(sampler_seed, minimum=0):
            raise self.fail("search.sampler_seed", f"{sampler_seed!r} must be an integer ≥ 0")
        startup = self._sampler_option(value, "n_startup_trials", 0, "tpe", sampler)
        population = self._sampler_option(value, "population_size", 2, "nsga2", sampler)
        search_seeds = self._search_seeds(value.get("seeds"), seeds, confirm, pruner)
        if not parameters and not arms and mode != "grid":
            raise self.fail("parameters", f"{mode} mode needs at least one parameter (or arm) to search over")
        return SearchSpec(
            mode=mode,
            samples=samples,
            sampler=sampler if mode == "optuna" else "random",
            sampler_seed=sampler_seed,
            n_startup_trials=startup,
            population_size=population,
            seeds=search_seeds,
        )

    def _sampler_option(
        self, value: dict[str, Any], key: str, minimum: int, owner: str, sampler: str
    ) -> int | None:
        """An optional integer setting of one sampler (``owner``): absent, or an integer ≥ ``minimum``
        with that sampler chosen."""
        option = value.get(key)
        if option is None:
            return None
        if not _is_int(option, minimum=minimum):
            raise self.fail(f"search.{key}", f"{option!r} must be an integer ≥ {minimum}")
        if sampler != owner:
            raise self.fail(f"search.{key}", f"only the {owner} sampler takes it (sampler is {sampler})")
        return option

    def _search_seeds(
        self, value: Any, seeds: tuple[int, ...], confirm: ConfirmSpec | None, pruner: PrunerSpec
    ) -> tuple[int, ...]:
        if pruner.seed_aware:
            if value is not None:
                raise self.fail("search.seeds", "the wilcoxon pruner runs every configuration on all `seeds`")
            return seeds
        if value is None:
            return seeds[:1] if confirm else seeds
        if not _is_int(value, minimum=1) or value > len(seeds):
            raise self.fail("search.seeds", f"{value!r} must be a count from 1 to len(seeds) = {len(seeds)}")
        if confirm and value == len(seeds):
            raise self.fail(
                "search.seeds", "with `confirm`, the search stage must use fewer seeds than `seeds`"
            )
        return seeds[:value]

    def _objectives(self, value: Any) -> tuple[Objective, ...]:
        """``objective``: one mapping, or a list of them for a multi-objective (Pareto) sweep."""
        if isinstance(value, list):
            if not value:
                raise self.fail("objective", "an empty list; give one objective or several")
            objectives = tuple(self._objective(item, f"objective[{i}]") for i, item in enumerate(value))
            metrics = [o.metric for o in objectives]
            repeated = sorted({m for m in metrics if metrics.count(m) > 1})
            if repeated:
                raise self.fail("objective", f"{', '.join(repeated)} listed twice; each metric once")
            return objectives
        return (self._objective(value, "objective"),)

    def _objective(self, value: Any, where: str) -> Objective:
        if not isinstance(value, dict):
            raise self.fail(
                where,
                f"{value!r} must be a mapping like {{metric: best_test_top1, mode: max}}"
                + ("" if "[" in where else ", or a list of them"),
            )
        self._check_keys(value, ("metric", "mode"), where)
        from engine.training.records import metric_keys  # noqa: PLC0415 — light module, no torch

        metric = value.get("metric", BEST_TEST_TOP1)
        allowed = [k for k in metric_keys(1) if not k.startswith(ALPHA_PREFIX)]
        if metric not in allowed:
            raise self.fail(f"{where}.metric", _unknown(str(metric), allowed, "metric"))
        mode = value.get("mode", "min" if metric.endswith("loss") else "max")
        if mode not in OBJECTIVE_MODES:
            raise self.fail(f"{where}.mode", f"{mode!r}; allowed: {', '.join(OBJECTIVE_MODES)}")
        return Objective(metric, mode)

    def _resources(self, value: Any) -> Resources:
        if not isinstance(value, dict):
            raise self.fail("resources", f"{value!r} must be a mapping like {{cpu: 1, gpu: 0.25}}")
        resources = self._section(Resources, value, "resources")
        gpu = resources.gpu
        if 0 < gpu < 1 and not _divides_one(gpu):
            fractions = ", ".join(_short(1 / n) for n in (2, 3, 4, 5, 6, 8))
            raise self.fail(
                "resources.gpu",
                f"{gpu} is not 1/n for a whole n from 2 to {MAX_TRIALS_PER_GPU}, so trials cannot pack a GPU "
                f"evenly; allowed: 1/n (e.g. {fractions}) or a whole number of GPUs",
            )
        if gpu > 1 and gpu != int(gpu):
            raise self.fail("resources.gpu", f"{gpu}: more than one GPU must be a whole number")
        return resources

    def _mlflow(self, value: Any) -> MlflowSpec:
        if not isinstance(value, dict):
            raise self.fail("mlflow", f"{value!r} must be a mapping")
        return self._section(MlflowSpec, value, "mlflow")

    def _section(self, cls: type, value: dict[str, Any], where: str) -> Any:
        """A typed section built by the same builder as a run config (``engine.typed``), in this file's
        words: unknown keys with the allowed ones, each value against its annotation and rule."""
        return build(cls, value, _SpaceStyle(self), f"{where}.")

    # ----------------------------------------------------------------------------------------------
    # checks
    def _check_keys(self, mapping: dict[str, Any], allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in mapping:
            if key not in allowed:
                at = f"{where}.{key}" if where else str(key)
                raise self.fail(at, _unknown(str(key), list(allowed), "key"))

    def _check_config_keys(self, flat: dict[str, Any], where: str) -> None:
        valid = all_keys()
        for key in flat:
            if key not in valid:
                raise self.fail(f"{where}.{key}", _unknown(key, valid, "run-config key"))

    def _check_scalars(self, values: list[Any], where: str) -> None:
        for i, v in enumerate(values):
            if not (v is None or isinstance(v, bool | int | float | str)):
                raise self.fail(
                    f"{where}[{i}]", f"{v!r}: values must be scalars (numbers, strings, true/false)"
                )
        if len({json.dumps(v) for v in values}) != len(values):
            raise self.fail(where, f"{values!r} lists a value twice")

    def _typed(self, raw: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
        value = raw.get(key, default)
        if not isinstance(value, kind):
            raise self.fail(f"{where}{key}", f"{value!r} must be a {kind.__name__}")
        return value

    def _check_run_configs(self, space: SweepSpace) -> None:
        """Every planned point (grid) or every boundary value (ranges) must be a valid run config."""
        from engine.validation import check_config  # noqa: PLC0415

        try:
            base = check_config(space.base_config())
        except ConfigError as exc:
            raise SpaceError(f"{self.path}: base: {_strip_source(str(exc))}") from None
        for arm in space.arms:
            self._validate_point(base, arm.overrides, f"arms[{arm.name}].set")
        if space.search.mode == "grid":
            if space.grid_size() > MAX_GRID_POINTS:
                raise self.fail(
                    "parameters", f"the grid has {space.grid_size()} points; at most {MAX_GRID_POINTS}"
                )
            if space.grid_size() * len(space.seeds) > MAX_RUNS:
                raise self.fail(
                    "seeds",
                    f"{space.grid_size()} grid points × {len(space.seeds)} seeds = "
                    f"{space.grid_size() * len(space.seeds)} runs; at most {MAX_RUNS}",
                )
            for point in space.grid_points():
                where = "parameters " + ", ".join(f"{k}={_short(v)}" for k, v in point.items())
                self._validate_point(base, space.overrides_for(point), where)
        else:
            for param in space.parameters:
                for i, value in enumerate(param.boundary_values()):
                    where = f"parameters.{param.key}" + (f"[{i}]" if param.kind in ("grid", "choice") else "")
                    self._validate_point(base, {param.key: value}, where)
                    for arm in space.arms:
                        self._validate_point(
                            base, {**arm.overrides, param.key: value}, f"{where} (arm {arm.name})"
                        )
        gpu = space.resources.gpu
        device = base.device
        if gpu == 0 and device.startswith("cuda"):
            raise self.fail(
                "resources.gpu", f"0, but base device is {device!r}: give trials a GPU or use auto/cpu"
            )
        if gpu > 0 and device == "cpu":
            raise self.fail(
                "resources.gpu", f"{gpu}, but base device is 'cpu': set base.device to auto or cuda"
            )

    def _validate_point(self, base: RunConfig, overrides: dict[str, Any], where: str) -> None:
        from engine.validation import check_config  # noqa: PLC0415 — the trainer's own checks

        try:
            check_config(base.with_overrides(overrides, source="x"))
        except ConfigError as exc:
            raise SpaceError(f"{self.path}: {where}: {_strip_source(str(exc))}") from None


# --------------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class _SpaceStyle:
    """How a typed section's problems read in a sweep file: ``<file>: <key>: <value> must be …``."""

    parser: _Parser

    def not_a_mapping(self, where: str, value: Any) -> SpaceError:
        return self.parser.fail(where, f"{value!r} must be a mapping")

    def unknown_key(self, key: str, valid: list[str]) -> SpaceError:
        name = key.rsplit(".", 1)[-1]
        return self.parser.fail(key, _unknown(name, [v.rsplit(".", 1)[-1] for v in valid], "key"))

    def bad_value(self, key: str, value: Any, kind: Any, rule: Rule | None) -> SpaceError:
        return self.parser.fail(key, f"{value!r} must be {_describe(kind, rule)}")

    def bad_choice(self, key: str, value: Any, choices: tuple[Any, ...]) -> SpaceError:
        return self.parser.fail(key, _unknown(str(value), list(choices), "value"))


@dataclass(frozen=True)
class _PrunerStyle(_SpaceStyle):
    """A pruner's options: an unknown one is named with the pruner's own options."""

    pruner: str = ""

    def unknown_key(self, key: str, valid: list[str]) -> SpaceError:
        options = ", ".join(v.rsplit(".", 1)[-1] for v in valid) or "none"
        name = key.rsplit(".", 1)[-1]
        return self.parser.fail(
            key, f"unknown option {name!r} of pruner {self.pruner!r}; its options: {options}"
        )


def _describe(kind: Any, rule: Rule | None) -> str:
    """The accepted values as a sweep file's messages name them."""
    if rule is not None and rule.what:
        return rule.what
    options = [k for k in typing.get_args(kind) if k is not type(None)] or [kind]
    if bool in options:
        return "true or false"
    if float in options:
        name = "a number"
    else:
        name = {int: "an integer", str: "a string"}.get(options[0], str(options[0]))
    if rule is not None and rule.gt is not None and rule.lt is not None:
        name = f"{name} in ({_short(rule.gt)}, {_short(rule.lt)})"
    elif rule is not None and rule.gt is not None:
        name = f"{name} > {_short(rule.gt)}"
    elif rule is not None and rule.ge is not None:
        name = f"{name} ≥ {_short(rule.ge)}"
    if rule is not None and rule.also:
        name += "".join(f" or {v!r}" for v in rule.also)
    return name


def _normalised(raw: dict[str, Any], name: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    out = dict(raw)
    out["name"] = name
    out["seeds"] = list(seeds)
    return out


def _strip_source(message: str) -> str:
    """Drop a leading ``x: `` source tag added by RunConfig for overrides we validated ourselves."""
    return message[3:] if message.startswith("x: ") else message


def _unknown(key: str, valid: list[str], what: str) -> str:
    close = close_matches(key, valid, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown {what} {key!r}{hint}; allowed: {', '.join(valid)}"


def _is_int(value: Any, minimum: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _divides_one(fraction: float) -> bool:
    n = round(1 / fraction)
    return 1 <= n <= MAX_TRIALS_PER_GPU and abs(n * fraction - 1) < 1e-9


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
