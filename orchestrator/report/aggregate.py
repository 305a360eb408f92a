"""From trials to a report: group seeds by configuration, summarise, rank, compare with a baseline.

A configuration is everything that changes results except the seed (the orchestrator's
``config_hash``). Configurations are named by the keys that actually differ between them
(``method.beta=0.5, sliding.schedule=step``), because a hash means nothing to a reader and the full
config is identical in all but a few keys.

Only COMPLETE trials enter the statistics: a pruned trial stopped early on purpose and a failed one
never produced a final number, so either would bias the mean. Both are counted and shown.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.config import NON_SEMANTIC_KEYS, parse_assignments
from engine.errors import ConfigError
from engine.training.records import BEST_TEST_TOP1
from orchestrator.records import ACTIVE_STATUSES, STORED_STATUSES, TrialStatus
from orchestrator.report.load import ReportInputError, SweepData, Trial
from orchestrator.report.stats import Estimate, PairedComparison, describe, holm, paired_comparison
from orchestrator.space import ARM_KEY

__all__ = [
    "SUMMARY_METRICS",
    "Comparison",
    "ConfigGroup",
    "ConfigSummary",
    "SweepReport",
    "build_report",
    "default_mode",
    "format_value",
    "group_trials",
    "label_keys",
    "resolve_baseline",
    "same_value",
]

SUMMARY_METRICS = (BEST_TEST_TOP1, "last_test_top1")
"""Always summarised: best-epoch accuracy is selected on the test set (spec §11 item 24, optimistic),
so the last-epoch accuracy is reported beside it."""
_LOWER_IS_BETTER_HINTS = ("loss", "time", "wall", "error", "mem")


@dataclass
class ConfigGroup:
    """The trials of one configuration (all seeds, all statuses)."""

    config_hash: str
    config: dict[str, Any]
    trials: list[Trial]
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for t in self.trials if t.status == status)

    def seed_values(self, metric: str) -> dict[int, float]:
        """``{seed: value}`` over COMPLETE trials with a finite value of ``metric``.

        Two complete trials with one seed (a search-stage run repeated in the confirmation stage) are
        one measurement: the one that ran more epochs is kept.
        """
        chosen: dict[int, Trial] = {}
        for trial in self.trials:
            if trial.status != TrialStatus.COMPLETE or not _finite(trial.metrics.get(metric)):
                continue
            previous = chosen.get(trial.seed)
            if previous is None or _epochs(trial) >= _epochs(previous):
                chosen[trial.seed] = trial
        return {seed: float(chosen[seed].metrics[metric]) for seed in sorted(chosen)}

    def completed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == TrialStatus.COMPLETE]


@dataclass
class ConfigSummary:
    group: ConfigGroup
    estimates: dict[str, Estimate]
    seeds: list[int]
    """Seeds with a COMPLETE trial."""
    median_best_epoch: float
    rank: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {status: self.group.count(status) for status in STORED_STATUSES}


@dataclass
class Comparison:
    """One configuration against the baseline on one metric, paired by seed."""

    metric: str
    group: ConfigGroup
    baseline: ConfigGroup
    seeds: list[int]
    result: PairedComparison
    delta_label: str
    """The keys where this configuration differs from the baseline (the ablation arm's name)."""
    p_ttest_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan
    unpaired_seeds: list[int] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        notes = list(self.result.notes)
        if self.unpaired_seeds:
            seeds = ", ".join(map(str, self.unpaired_seeds))
            notes.append(f"seeds without a completed partner left out of the pairing: {seeds}")
        return notes


@dataclass
class SweepReport:
    sweep: SweepData
    metric: str
    mode: str
    confidence: float
    metrics: list[str]
    keys: list[str]
    """The config keys that tell configurations apart; labels are built from them."""
    summaries: list[ConfigSummary]
    """Ranked by ``metric`` (best first); configurations without a completed seed come last."""
    baseline: ConfigGroup | None
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    baseline_name: str = "baseline"
    """What the baseline is called in the ablation table ("full method" in an ablation sweep)."""

    def comparisons_for(self, metric: str) -> list[Comparison]:
        return [c for c in self.comparisons if c.metric == metric]

    def summary_of(self, config_hash: str) -> ConfigSummary:
        return next(s for s in self.summaries if s.group.config_hash == config_hash)


# --------------------------------------------------------------------------------------------------
# building


def build_report(
    sweep: SweepData,
    *,
    metric: str = BEST_TEST_TOP1,
    baseline: list[str] | dict[str, Any] | None = None,
    mode: str | None = None,
    confidence: float = 0.95,
    allow_partial: bool = False,
    baseline_name: str = "baseline",
) -> SweepReport:
    """Check the sweep is reportable, then summarise every configuration and compare with ``baseline``."""
    _check_reportable(sweep, allow_partial)
    available = sweep.metric_names()
    if metric not in available:
        raise ReportInputError(
            f"metric {metric!r} does not exist in sweep {sweep.name!r}; available metrics: "
            f"{', '.join(available)}"
        )
    if mode is None:
        mode = default_mode(metric)
    if mode not in ("max", "min"):
        raise ReportInputError(f"mode {mode!r} must be 'max' or 'min'")

    groups = group_trials(sweep.trials)
    keys = label_keys(groups, sweep.varied)
    for group in groups:
        group.label = config_label(group.config, keys)
    _disambiguate_labels(groups)

    metrics = [*SUMMARY_METRICS, *([metric] if metric not in SUMMARY_METRICS else [])]
    metrics = [m for m in metrics if m in available]
    summaries = [_summarise(group, metrics, confidence) for group in groups]
    summaries = _rank(summaries, metric, mode)

    notes: list[str] = []
    counts = sweep.status_counts()
    if any(counts[s] for s in ACTIVE_STATUSES):
        notes.append(
            f"partial report: {counts['RUNNING']} trials RUNNING and {counts['PENDING']} PENDING are not "
            "included"
        )
    base_group = resolve_baseline(groups, baseline, keys) if baseline else None
    comparisons = _compare_all(groups, base_group, metrics, keys, confidence) if base_group else []
    return SweepReport(
        sweep,
        metric,
        mode,
        confidence,
        metrics,
        keys,
        summaries,
        base_group,
        comparisons,
        notes,
        baseline_name,
    )


def default_mode(metric: str) -> str:
    """``min`` for losses, times and errors, ``max`` for accuracies and everything else."""
    return "min" if any(hint in metric for hint in _LOWER_IS_BETTER_HINTS) else "max"


def _check_reportable(sweep: SweepData, allow_partial: bool) -> None:
    if not sweep.trials:
        raise ReportInputError(f"sweep {sweep.name!r} ({sweep.source}) has no trials yet: nothing to report")
    counts = sweep.status_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    active = sum(counts[s] for s in ACTIVE_STATUSES)
    if active and not allow_partial:
        raise ReportInputError(
            f"sweep {sweep.name!r} is unfinished ({summary}); wait for it to end, resume it with "
            "`spikesweep sweep SPACE --resume`, or pass --partial to report on the finished trials only"
        )
    if counts[TrialStatus.COMPLETE] == 0:
        raise ReportInputError(
            f"sweep {sweep.name!r} has no COMPLETE trial ({summary}): there is no result to summarise"
        )


def group_trials(trials: list[Trial]) -> list[ConfigGroup]:
    """One group per config hash, in order of first appearance."""
    groups: dict[str, ConfigGroup] = {}
    for trial in trials:
        group = groups.get(trial.config_hash)
        if group is None:
            config = {k: v for k, v in trial.config.items() if k != "seed"}
            if trial.arm:
                # The arm's name is a pseudo-key: it labels ablation rows and works in --baseline arm=full.
                config = {ARM_KEY: trial.arm, **config}
            group = groups[trial.config_hash] = ConfigGroup(trial.config_hash, config, [])
        group.trials.append(trial)
    for group in groups.values():
        seeds = [t.seed for t in group.completed()]
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            group.notes.append(
                f"seeds {', '.join(map(str, repeated))} completed more than once; "
                "the longest run of each is used"
            )
    return list(groups.values())


def label_keys(groups: list[ConfigGroup], declared: list[str]) -> list[str]:
    """Config keys whose values differ between configurations: the arm first, then declared varied keys."""
    all_keys: dict[str, None] = {}
    for group in groups:
        all_keys.update(dict.fromkeys(group.config))
    differing = [
        k
        for k in all_keys
        if k not in NON_SEMANTIC_KEYS and len({_canonical(g.config.get(k)) for g in groups}) > 1
    ]
    first = [k for k in (ARM_KEY, *declared) if k in differing]
    first = list(dict.fromkeys(first))
    return first + sorted(k for k in differing if k not in first)


def config_label(config: dict[str, Any], keys: list[str]) -> str:
    if not keys:
        return "(the only configuration)"
    return ", ".join(f"{k}={format_value(config.get(k))}" for k in keys)


def format_value(value: Any) -> str:
    """YAML-style scalars, so a label can be pasted back as ``--baseline KEY=VALUE``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value == value else "nan"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _disambiguate_labels(groups: list[ConfigGroup]) -> None:
    seen: dict[str, int] = {}
    for group in groups:
        seen[group.label] = seen.get(group.label, 0) + 1
    for group in groups:
        if seen[group.label] > 1:
            group.label = f"{group.label} [{group.config_hash[:8]}]"


def _summarise(group: ConfigGroup, metrics: list[str], confidence: float) -> ConfigSummary:
    estimates = {m: describe(list(group.seed_values(m).values()), confidence) for m in metrics}
    best_epochs = list(group.seed_values("best_epoch").values())
    median = float(statistics.median(best_epochs)) if best_epochs else math.nan
    seeds = sorted({t.seed for t in group.completed()})
    return ConfigSummary(group, estimates, seeds, median)


def _rank(summaries: list[ConfigSummary], metric: str, mode: str) -> list[ConfigSummary]:
    sign = -1.0 if mode == "max" else 1.0

    def key(s: ConfigSummary):
        # Ties (and configurations without a result) fall back to the label, so the order does not
        # depend on which store the trials were read from.
        mean = s.estimates[metric].mean
        return ((0, sign * mean) if _finite(mean) else (1, 0.0)) + (s.group.label, s.group.config_hash)

    ranked = sorted(summaries, key=key)
    for i, s in enumerate(ranked, 1):
        s.rank = i if _finite(s.estimates[metric].mean) else 0
    return ranked


# --------------------------------------------------------------------------------------------------
# baseline and comparisons


def resolve_baseline(
    groups: list[ConfigGroup], baseline: list[str] | dict[str, Any], keys: list[str]
) -> ConfigGroup:
    """The one configuration whose config matches every ``KEY=VALUE`` of ``baseline``."""
    try:
        wanted = parse_assignments(baseline, "--baseline") if isinstance(baseline, list) else dict(baseline)
    except ConfigError as exc:
        raise ReportInputError(str(exc)) from None
    known = set().union(*(g.config for g in groups))
    listing = _listing(groups)
    for key in wanted:
        if key not in known:
            raise ReportInputError(
                f"--baseline: {key!r} is not a config key of this sweep; keys that vary here: "
                f"{', '.join(keys) or 'none (one configuration)'}; configurations:\n{listing}"
            )
    matches = [g for g in groups if all(same_value(g.config.get(k), v) for k, v in wanted.items())]
    asked = ", ".join(f"{k}={format_value(v)}" for k, v in wanted.items())
    if not matches:
        seen = {k: sorted({format_value(g.config.get(k)) for g in groups}) for k in wanted}
        values = "; ".join(f"{k} takes {', '.join(v)}" for k, v in seen.items())
        raise ReportInputError(
            f"--baseline {asked} matches no configuration ({values}); configurations:\n{listing}"
        )
    if len(matches) > 1:
        separating = label_keys(matches, keys)
        raise ReportInputError(
            f"--baseline {asked} matches {len(matches)} configurations; add "
            f"{' or '.join(separating) or 'a key'} to pick one of:\n{_listing(matches)}"
        )
    return matches[0]


def _compare_all(
    groups: list[ConfigGroup],
    baseline: ConfigGroup,
    metrics: list[str],
    keys: list[str],
    confidence: float,
) -> list[Comparison]:
    out: list[Comparison] = []
    for metric in metrics:
        base = baseline.seed_values(metric)
        family: list[Comparison] = []
        for group in groups:
            if group is baseline:
                continue
            values = group.seed_values(metric)
            seeds = sorted(set(values) & set(base))
            result = paired_comparison(
                [values[s] for s in seeds], [base[s] for s in seeds], confidence=confidence
            )
            delta = [k for k in keys if _canonical(group.config.get(k)) != _canonical(baseline.config.get(k))]
            family.append(
                Comparison(
                    metric=metric,
                    group=group,
                    baseline=baseline,
                    seeds=seeds,
                    result=result,
                    delta_label=config_label(group.config, delta) if delta else group.label,
                    unpaired_seeds=sorted(set(values) ^ set(base)),
                )
            )
        t_adj = holm([c.result.p_ttest for c in family])
        w_adj = holm([c.result.p_wilcoxon for c in family])
        for comparison, pt, pw in zip(family, t_adj, w_adj, strict=True):
            comparison.p_ttest_holm = float(pt)
            comparison.p_wilcoxon_holm = float(pw)
        out.extend(family)
    return out


def _listing(groups: list[ConfigGroup]) -> str:
    return "\n".join(f"  - {g.label or g.config_hash} ({g.config_hash})" for g in groups)


def same_value(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return actual is wanted or (isinstance(wanted, str) and wanted.lower() == str(actual).lower())
    if _is_number(actual) and _is_number(wanted):
        # A value pasted from a label (6 significant digits) names the configuration it labels.
        close = math.isclose(float(actual), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        return close or format_value(float(actual)) == format_value(float(wanted))
    if isinstance(actual, list | tuple) and isinstance(wanted, list | tuple):
        return len(actual) == len(wanted) and all(
            same_value(a, w) for a, w in zip(actual, wanted, strict=True)
        )
    if actual is None or wanted is None:
        return actual is None and wanted is None
    return str(actual) == str(wanted)


def _canonical(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return json.dumps(value, sort_keys=True, default=str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _epochs(trial: Trial) -> float:
    value = trial.metrics.get("epochs_run")
    return value if _finite(value) else -1.0
