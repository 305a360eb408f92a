"""Seed aggregates back into MLflow: one run per configuration under the sweep's parent run.

The MLflow UI compares runs, not groups of runs; an aggregate run per configuration (params = the
configuration, metrics = mean, std, SEM, CI bounds and n over its seeds) puts the seed-aggregated result
in the same run table as the individual trials. The aggregate also logs ``best_test_top1`` and
``last_test_top1`` as the seed means, so they line up in the trials' own columns.

Keyed by what produced them: an aggregate is found again by its tags (role ``aggregate``, the parent
run, the config hash and the *report key* — the baseline it was compared with), so a report against
another baseline (or none) writes its own aggregate runs and its own ``report/<key>/`` artifact folder
instead of overwriting the first. The same report again writes nothing new (a metric is logged only when
its value changed); a report whose numbers *would* change those already recorded under its key (more
trials since, another confidence level) is refused unless ``replace`` (``--replace``) says so. The
parent run gets the sweep's summary: the best configuration, its mean and CI, and the run counts, so
its collapsed row and the chart view show something.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.records import TrialStatus
from orchestrator.report.aggregate import ConfigSummary, SweepReport
from orchestrator.report.load import ReportInputError
from orchestrator.report.mlflow_source import search_all_runs
from orchestrator.report.stats import Estimate

__all__ = [
    "AGGREGATE_ROLE",
    "AggregateResult",
    "aggregate_metrics",
    "log_aggregates",
    "log_parent_summary",
    "parent_summary",
]

AGGREGATE_ROLE = "aggregate"
_ROLE_TAG = "spikesweep.role"
_BATCH = 100  # MLflow accepts at most 100 params (and 1000 metrics) per log_batch call


@dataclass
class AggregateResult:
    parent_run_id: str
    run_ids: dict[str, str] = field(default_factory=dict)
    """``{config_hash: aggregate run id}``."""
    created: int = 0
    updated_metrics: int = 0
    artifacts: list[str] = field(default_factory=list)


def aggregate_metrics(report: SweepReport, summary: ConfigSummary) -> dict[str, float]:
    """The numbers one aggregate run carries (finite values only; MLflow shows NaN as an empty cell)."""
    counts = summary.counts
    values: dict[str, float] = {
        "n_complete": counts[TrialStatus.COMPLETE],
        "n_failed": counts[TrialStatus.FAILED],
        "n_pruned": counts[TrialStatus.PRUNED],
        "rank": summary.rank,
        "median_best_epoch": summary.median_best_epoch,
    }
    for metric, est in summary.estimates.items():
        values[metric] = est.mean
        for part in ("n", "mean", "std", "sem", "ci_low", "ci_high"):
            values[f"{metric}_{part}"] = getattr(est, part)
    for comparison in report.comparisons:
        if comparison.group is not summary.group:
            continue
        r = comparison.result
        prefix = f"delta_{comparison.metric}"
        values.update(
            {
                f"{prefix}_mean": r.mean_diff,
                f"{prefix}_ci_low": r.ci_low,
                f"{prefix}_ci_high": r.ci_high,
                f"{prefix}_n_pairs": r.n,
                f"{prefix}_p_ttest": r.p_ttest,
                f"{prefix}_p_ttest_holm": comparison.p_ttest_holm,
                f"{prefix}_p_wilcoxon": r.p_wilcoxon,
                f"{prefix}_p_wilcoxon_holm": comparison.p_wilcoxon_holm,
            }
        )
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def report_key(report: SweepReport) -> str:
    """What distinguishes one report's aggregates from another's: the baseline they compare against."""
    return f"baseline-{report.baseline.config_hash}" if report.baseline is not None else "no-baseline"


def log_aggregates(
    report: SweepReport,
    tracking_uri: str,
    files: list[Path] = (),
    experiment_id: str | None = None,
    parent_run_id: str | None = None,
    replace: bool = False,
) -> AggregateResult:
    """Create or update one aggregate run per configuration and attach ``files`` to the parent run."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = report.sweep.experiment or report.sweep.name
    experiment_id = experiment_id or _experiment_id(client, experiment, tracking_uri)
    parent_id = parent_run_id or _parent_run_id(
        client, experiment_id, report.sweep.name, report.sweep.sweep_id
    )
    key = report_key(report)
    existing = {
        run.data.tags.get("spikesweep.config_hash"): run
        for run in search_all_runs(
            client,
            experiment_id,
            f"tags.`{_ROLE_TAG}` = '{AGGREGATE_ROLE}' and tags.`mlflow.parentRunId` = '{parent_id}'",
        )
        if _key_of(run) == key
    }
    if not replace:
        _refuse_changes(report, existing, key)
    result = AggregateResult(parent_run_id=parent_id)
    sweep_id = client.get_run(parent_id).data.tags.get("spikesweep.sweep_id")
    baseline_hash = report.baseline.config_hash if report.baseline is not None else "none"
    for summary in report.summaries:
        group = summary.group
        tags = {
            _ROLE_TAG: AGGREGATE_ROLE,
            "mlflow.parentRunId": parent_id,
            "spikesweep.sweep": report.sweep.name,
            "spikesweep.config_hash": group.config_hash,
            "spikesweep.label": group.label,
            "spikesweep.seeds": ",".join(map(str, summary.seeds)),
            "spikesweep.baseline": baseline_hash,
            "spikesweep.is_baseline": str(group.config_hash == baseline_hash).lower(),
            "spikesweep.confidence": f"{report.confidence:g}",
            "spikesweep.report_key": key,
        }
        if sweep_id:
            tags["spikesweep.sweep_id"] = sweep_id
        run = existing.get(group.config_hash)
        created = run is None
        if created:
            run = client.create_run(experiment_id, tags=tags, run_name=_run_name(group.label))
            result.created += 1
        run_id = run.info.run_id
        result.run_ids[group.config_hash] = run_id
        try:
            old_params = {} if created else run.data.params
            params = [Param(k, str(v)[:6000]) for k, v in group.config.items() if k not in old_params]
            old_metrics = {} if created else run.data.metrics
            now = int(time.time() * 1000)
            values = aggregate_metrics(report, summary)
            metrics = [Metric(k, v, now, 0) for k, v in values.items() if old_metrics.get(k) != v]
            # MLflow cannot delete a metric: a number that no longer holds (a comparison against an
            # earlier baseline, an interval that became undefined) is overwritten with NaN.
            metrics += [
                Metric(k, math.nan, now, 0)
                for k, v in old_metrics.items()
                if k not in values and not math.isnan(v)
            ]
            new_tags = [RunTag(k, v) for k, v in tags.items() if created or run.data.tags.get(k) != v]
            for i in range(0, max(len(params), 1), _BATCH):
                client.log_batch(
                    run_id,
                    metrics=metrics if i == 0 else [],
                    params=params[i : i + _BATCH],
                    tags=new_tags if i == 0 else [],
                )
            result.updated_metrics += len(metrics)
        except Exception:
            if created:
                client.set_terminated(run_id, status="FAILED")
            raise
        if created or run.info.status != "FINISHED":
            client.set_terminated(run_id, status="FINISHED")

    _log_parent_summary(client, parent_id, report)
    for path in files:
        client.log_artifact(parent_id, str(path), artifact_path=f"report/{key}")
        result.artifacts.append(f"report/{key}/{Path(path).name}")
    return result


def _key_of(run) -> str:
    """A run's report key; aggregates written before keys existed are keyed by their baseline tag."""
    tags = run.data.tags
    if "spikesweep.report_key" in tags:
        return tags["spikesweep.report_key"]
    baseline = tags.get("spikesweep.baseline", "none")
    return "no-baseline" if baseline == "none" else f"baseline-{baseline}"


def _refuse_changes(report: SweepReport, existing: dict, key: str) -> None:
    """Raise when this report would change numbers already recorded under its key (see the docstring)."""
    changed = []
    for summary in report.summaries:
        run = existing.get(summary.group.config_hash)
        if run is None:
            continue
        old = run.data.metrics
        for name, value in aggregate_metrics(report, summary).items():
            if name in old and not math.isclose(old[name], value, rel_tol=1e-12, abs_tol=1e-12):
                changed.append(f"{summary.group.label}: {name} {old[name]:.6g} → {value:.6g}")
    if changed:
        shown = changed[:5] + ([f"… and {len(changed) - 5} more"] if len(changed) > 5 else [])
        raise ReportInputError(
            f"MLflow already holds this report ({key}) with other numbers:\n  - "
            + "\n  - ".join(shown)
            + "\npass --replace to overwrite them, or --no-mlflow to only write the files"
        )


def parent_summary(
    metric: str, counts: dict[str, int], best: tuple[str, str, Estimate] | None
) -> tuple[dict[str, float], dict[str, str]]:
    """``(metrics, tags)`` of a sweep's parent run: the run counts and, with ``best`` = (label, config
    hash, estimate of ``metric`` over its seeds), the best configuration's mean and CI. Written by the
    sweep driver when a sweep ends and again by ``report`` (same names), so the parent's collapsed row
    and the chart view show the result without a report having run."""
    values = {
        "n_complete": counts.get(TrialStatus.COMPLETE, 0),
        "n_failed": counts.get(TrialStatus.FAILED, 0),
    }
    values["n_pruned"] = counts.get(TrialStatus.PRUNED, 0)
    tags: dict[str, str] = {}
    if best is not None:
        label, config_hash, est = best
        values.update(
            {
                f"best_{metric}_mean": est.mean,
                f"best_{metric}_ci_low": est.ci_low,
                f"best_{metric}_ci_high": est.ci_high,
                f"best_{metric}_n": est.n,
            }
        )
        tags = {"spikesweep.best_configuration": label[:5000], "spikesweep.best_config_hash": config_hash}
    finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
    return finite, tags


def log_parent_summary(client, parent_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
    from mlflow.entities import Metric, RunTag  # noqa: PLC0415

    now = int(time.time() * 1000)
    client.log_batch(
        parent_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


def _log_parent_summary(client, parent_id: str, report: SweepReport) -> None:
    """Best configuration, its mean and CI, and the run counts on the sweep's parent run."""
    ranked = [s for s in report.summaries if s.rank == 1]
    best = None
    if ranked:
        best = (ranked[0].group.label, ranked[0].group.config_hash, ranked[0].estimates[report.metric])
    log_parent_summary(client, parent_id, *parent_summary(report.metric, report.sweep.status_counts(), best))


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportInputError(
            f"MLflow at {tracking_uri} has no experiment {name!r} to attach aggregates to; experiments: "
            f"{', '.join(names) or 'none'}"
        )
    return exp.experiment_id


def _parent_run_id(client, experiment_id: str, sweep_name: str, sweep_id: str | None) -> str:
    """The sweep's parent run: the one with its sweep id when known, else the latest sweep run."""
    condition = f"tags.`{_ROLE_TAG}` = 'sweep'"
    if sweep_id:
        condition += f" and tags.`spikesweep.sweep_id` = '{sweep_id}'"
    parents = client.search_runs([experiment_id], filter_string=condition, max_results=50)
    if not parents:
        which = f"tagged {_ROLE_TAG}=sweep" + (f" with spikesweep.sweep_id={sweep_id}" if sweep_id else "")
        raise ReportInputError(
            f"the MLflow experiment of sweep {sweep_name!r} has no parent run {which}; aggregates need one "
            "to nest under (pass --no-mlflow to skip writing to MLflow)"
        )
    return max(parents, key=lambda r: r.info.start_time or 0).info.run_id


def _run_name(label: str) -> str:
    name = f"aggregate: {label}"
    return name if len(name) <= 250 else name[:247] + "..."
