"""The report's machine-readable outputs: ``summary.parquet`` and ``comparisons.parquet``.

Explicit schemas (not pandas' inference) so an empty comparison table still has typed columns and a
downstream notebook can rely on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.training.records import write_table_atomic
from orchestrator.records import TrialStatus
from orchestrator.report.aggregate import SweepReport
from orchestrator.report.load import CONFIG_PREFIX

__all__ = ["comparison_records", "comparisons_schema", "summary_records", "summary_schema", "write_parquet"]

_ESTIMATE_FIELDS = ("n", "mean", "std", "sem", "ci_low", "ci_high")


def summary_schema(report: SweepReport) -> pa.Schema:
    fields = [
        pa.field("sweep", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("label", pa.string()),
        pa.field("rank", pa.int64()),
        pa.field("is_baseline", pa.bool_()),
        pa.field("n_trials", pa.int64()),
        pa.field("n_complete", pa.int64()),
        pa.field("n_failed", pa.int64()),
        pa.field("n_pruned", pa.int64()),
        pa.field("n_running", pa.int64()),
        pa.field("n_pending", pa.int64()),
        pa.field("seeds", pa.list_(pa.int64())),
        pa.field("median_best_epoch", pa.float64()),
    ]
    for metric in report.metrics:
        for part in _ESTIMATE_FIELDS:
            fields.append(pa.field(f"{metric}_{part}", pa.int64() if part == "n" else pa.float64()))
    fields.append(pa.field("config_json", pa.string()))
    fields += [pa.field(CONFIG_PREFIX + key, pa.string()) for key in report.keys]
    return pa.schema(fields)


def summary_records(report: SweepReport) -> list[dict[str, Any]]:
    """One record per configuration, in rank order."""
    from orchestrator.report.aggregate import format_value

    records = []
    for s in report.summaries:
        counts = s.counts
        record: dict[str, Any] = {
            "sweep": report.sweep.name,
            "config_hash": s.group.config_hash,
            "label": s.group.label,
            "rank": s.rank,
            "is_baseline": report.baseline is not None and s.group is report.baseline,
            "n_trials": len(s.group.trials),
            "n_complete": counts[TrialStatus.COMPLETE],
            "n_failed": counts[TrialStatus.FAILED],
            "n_pruned": counts[TrialStatus.PRUNED],
            "n_running": counts[TrialStatus.RUNNING],
            "n_pending": counts[TrialStatus.PENDING],
            "seeds": s.seeds,
            "median_best_epoch": s.median_best_epoch,
        }
        for metric, est in s.estimates.items():
            for part in _ESTIMATE_FIELDS:
                record[f"{metric}_{part}"] = getattr(est, part)
        record["config_json"] = json.dumps(s.group.config, sort_keys=True, default=str)
        for key in report.keys:
            record[CONFIG_PREFIX + key] = format_value(s.group.config.get(key))
        records.append(record)
    return records


def comparisons_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("sweep", pa.string()),
            pa.field("metric", pa.string()),
            pa.field("config_hash", pa.string()),
            pa.field("label", pa.string()),
            pa.field("arm", pa.string()),
            pa.field("baseline_hash", pa.string()),
            pa.field("baseline_label", pa.string()),
            pa.field("n_pairs", pa.int64()),
            pa.field("seeds", pa.list_(pa.int64())),
            pa.field("mean_diff", pa.float64()),
            pa.field("std_diff", pa.float64()),
            pa.field("ci_low", pa.float64()),
            pa.field("ci_high", pa.float64()),
            pa.field("t_statistic", pa.float64()),
            pa.field("p_ttest", pa.float64()),
            pa.field("p_ttest_holm", pa.float64()),
            pa.field("p_wilcoxon", pa.float64()),
            pa.field("p_wilcoxon_holm", pa.float64()),
            pa.field("enough_seeds", pa.bool_()),
            pa.field("notes", pa.string()),
        ]
    )


def comparison_records(report: SweepReport) -> list[dict[str, Any]]:
    records = []
    for c in report.comparisons:
        r = c.result
        records.append(
            {
                "sweep": report.sweep.name,
                "metric": c.metric,
                "config_hash": c.group.config_hash,
                "label": c.group.label,
                "arm": c.delta_label,
                "baseline_hash": c.baseline.config_hash,
                "baseline_label": c.baseline.label,
                "n_pairs": r.n,
                "seeds": c.seeds,
                "mean_diff": r.mean_diff,
                "std_diff": r.std_diff,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "t_statistic": r.t_statistic,
                "p_ttest": r.p_ttest,
                "p_ttest_holm": c.p_ttest_holm,
                "p_wilcoxon": r.p_wilcoxon,
                "p_wilcoxon_holm": c.p_wilcoxon_holm,
                "enough_seeds": r.enough_seeds,
                "notes": "; ".join(c.notes),
            }
        )
    return records


def write_parquet(records: list[dict[str, Any]], schema: pa.Schema, path: Path) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    write_table_atomic(pa.Table.from_pylist(records, schema=schema), path)
    return path
