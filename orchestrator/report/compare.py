"""The same configurations across several sweeps (e.g. a reproduction on two clusters).

Configurations are matched by config hash, which leaves out paths, devices and worker counts, so one
configuration run on two machines matches. For each configuration present in the reference sweep (the
first one) and in another sweep, the difference of the other minus the reference is tested paired by
seed when at least two seeds were completed in both (the same seed on two clusters differs only by
hardware non-determinism), and with Welch's unpaired t-test otherwise. p-values are Holm-corrected per
metric across all those differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.training.records import BEST_TEST_TOP1
from orchestrator.records import TrialStatus
from orchestrator.report.aggregate import (
    ConfigSummary,
    SweepReport,
    build_report,
    config_label,
    label_keys,
)
from orchestrator.report.load import ReportInputError, SweepData
from orchestrator.report.outputs import write_parquet
from orchestrator.report.stats import holm, paired_comparison, welch_comparison
from orchestrator.report.tables import DASH, Table, format_estimate, format_p, metric_title

__all__ = ["CrossDiff", "SweepsComparison", "compare_sweeps", "write_comparison"]

_SUMMARY_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("config_hash", pa.string()),
        ("label", pa.string()),
        ("metric", pa.string()),
        ("n", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n_failed", pa.int64()),
        ("n_pruned", pa.int64()),
    ]
)
_DIFF_SCHEMA = pa.schema(
    [
        ("metric", pa.string()),
        ("config_hash", pa.string()),
        ("label", pa.string()),
        ("sweep", pa.string()),
        ("reference", pa.string()),
        ("method", pa.string()),
        ("n", pa.int64()),
        ("mean_diff", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("p", pa.float64()),
        ("p_holm", pa.float64()),
        ("notes", pa.string()),
    ]
)


@dataclass
class CrossDiff:
    metric: str
    config_hash: str
    sweep: str
    reference: str
    method: str
    """``paired`` (by seed) or ``welch`` (unpaired, when fewer than two seeds are shared)."""
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float = math.nan
    notes: list[str] = field(default_factory=list)


@dataclass
class SweepsComparison:
    names: list[str]
    reports: list[SweepReport]
    metric: str
    metrics: list[str]
    labels: dict[str, str]
    """``{config_hash: label}`` over every sweep's configurations."""
    order: list[str]
    """Config hashes, the reference sweep's ranking first, then configurations only other sweeps have."""
    diffs: list[CrossDiff]

    def summary(self, sweep_index: int, config_hash: str) -> ConfigSummary | None:
        report = self.reports[sweep_index]
        return next((s for s in report.summaries if s.group.config_hash == config_hash), None)


def compare_sweeps(
    sweeps: list[SweepData],
    *,
    metric: str = BEST_TEST_TOP1,
    mode: str | None = None,
    confidence: float = 0.95,
    allow_partial: bool = False,
) -> SweepsComparison:
    if len(sweeps) < 2:
        raise ReportInputError(f"compare needs at least two sweeps, got {len(sweeps)}")
    reports = [
        build_report(s, metric=metric, mode=mode, confidence=confidence, allow_partial=allow_partial)
        for s in sweeps
    ]
    names = _unique_names(sweeps)
    groups = {}
    declared: list[str] = []
    for report in reports:
        declared += [k for k in report.sweep.varied if k not in declared]
        for s in report.summaries:
            groups.setdefault(s.group.config_hash, s.group)
    keys = label_keys(list(groups.values()), declared)
    labels = {h: config_label(g.config, keys) for h, g in groups.items()}
    order = [s.group.config_hash for s in reports[0].summaries]
    order += [h for h in groups if h not in order]
    metrics = [m for m in reports[0].metrics if all(m in r.metrics for r in reports)]
    diffs = _differences(reports, names, metrics, confidence)
    shared = {d.config_hash for d in diffs}
    if not shared:
        raise ReportInputError(
            "the sweeps share no configuration (config hashes differ), so there is nothing to compare; "
            + "; ".join(
                f"{n}: {', '.join(s.group.config_hash for s in r.summaries)}"
                for n, r in zip(names, reports, strict=True)
            )
        )
    return SweepsComparison(names, reports, reports[0].metric, metrics, labels, order, diffs)


def _unique_names(sweeps: list[SweepData]) -> list[str]:
    names = [s.name for s in sweeps]
    if len(set(names)) == len(names):
        return names
    out = []
    for i, sweep in enumerate(sweeps):
        if sweep.sweep_dir is not None:
            out.append(f"{sweep.sweep_dir.resolve().parent.name}/{sweep.name}")
        else:
            out.append(f"{sweep.name}#{i + 1}")
    return out if len(set(out)) == len(out) else [f"{n}#{i + 1}" for i, n in enumerate(names)]


def _differences(
    reports: list[SweepReport], names: list[str], metrics: list[str], confidence: float
) -> list[CrossDiff]:
    out: list[CrossDiff] = []
    reference = reports[0]
    for metric in metrics:
        family: list[CrossDiff] = []
        for ref_summary in reference.summaries:
            base = ref_summary.group.seed_values(metric)
            for name, report in zip(names[1:], reports[1:], strict=True):
                other = next(
                    (s for s in report.summaries if s.group.config_hash == ref_summary.group.config_hash),
                    None,
                )
                if other is None:
                    continue
                values = other.group.seed_values(metric)
                seeds = sorted(set(values) & set(base))
                if len(seeds) >= 2:
                    r = paired_comparison([values[s] for s in seeds], [base[s] for s in seeds], confidence)
                    diff = CrossDiff(
                        metric, ref_summary.group.config_hash, name, names[0], "paired", r.n,
                        r.mean_diff, r.ci_low, r.ci_high, r.p_ttest, notes=list(r.notes),
                    )  # fmt: skip
                else:
                    mean, low, high, p = welch_comparison(
                        list(values.values()), list(base.values()), confidence
                    )
                    notes = [] if math.isfinite(p) else ["not enough seeds for a test"]
                    diff = CrossDiff(
                        metric, ref_summary.group.config_hash, name, names[0], "welch",
                        min(len(values), len(base)), mean, low, high, p, notes=notes,
                    )  # fmt: skip
                family.append(diff)
        for diff, adjusted in zip(family, holm([d.p for d in family]), strict=True):
            diff.p_holm = float(adjusted)
        out.extend(family)
    return out


# --------------------------------------------------------------------------------------------------
# tables and files


def comparison_table(comp: SweepsComparison, metric: str, digits: int = 2) -> Table:
    ci = f"{comp.reports[0].confidence:.0%} CI"
    headers = ["configuration", "hash"]
    for name in comp.names:
        headers += [f"{name}: n", f"{name}: mean ± {ci}"]
    for name in comp.names[1:]:
        headers += [f"Δ {name} − {comp.names[0]} [{ci}]", "test", "p (Holm)"]
    diffs = {(d.config_hash, d.sweep): d for d in comp.diffs if d.metric == metric}
    rows = []
    for config_hash in comp.order:
        row = [comp.labels[config_hash], config_hash]
        for i in range(len(comp.names)):
            s = comp.summary(i, config_hash)
            est = s.estimates.get(metric) if s else None
            row += [str(est.n) if est else DASH, format_estimate(est, digits) if est else DASH]
        for name in comp.names[1:]:
            d = diffs.get((config_hash, name))
            if d is None:
                row += [DASH, DASH, DASH]
                continue
            shown = DASH if not math.isfinite(d.mean_diff) else f"{d.mean_diff:+.{digits}f}"
            if math.isfinite(d.ci_low):
                shown += f" [{d.ci_low:+.{digits}f}, {d.ci_high:+.{digits}f}]"
            elif d.notes:
                shown += f" ({d.notes[0]})"
            row += [shown, f"{d.method} (n={d.n})", format_p(d.p_holm)]
        rows.append(row)
    return Table(headers, rows, "ll" + "r" * (len(headers) - 2))


def render_markdown(comp: SweepsComparison) -> str:
    lines = [
        f"# Sweep comparison: {' vs '.join(comp.names)}",
        "",
        *(f"- `{n}`: {r.sweep.source}" for n, r in zip(comp.names, comp.reports, strict=True)),
        f"- reference: `{comp.names[0]}`; Δ is each other sweep minus the reference, paired by seed where "
        "at least two seeds are shared (Welch's t-test otherwise), Holm-corrected per metric.",
        "",
    ]
    for metric in comp.metrics:
        lines += [
            f"## {metric_title(metric)} (`{metric}`)",
            "",
            comparison_table(comp, metric).to_markdown(),
            "",
        ]
    return "\n".join(lines)


def write_comparison(comp: SweepsComparison, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for config_hash in comp.order:
        for i, name in enumerate(comp.names):
            s = comp.summary(i, config_hash)
            if s is None:
                continue
            for metric in comp.metrics:
                est = s.estimates[metric]
                records.append(
                    {
                        "sweep": name,
                        "config_hash": config_hash,
                        "label": comp.labels[config_hash],
                        "metric": metric,
                        "n": est.n,
                        "mean": est.mean,
                        "std": est.std,
                        "ci_low": est.ci_low,
                        "ci_high": est.ci_high,
                        "n_failed": s.counts[TrialStatus.FAILED],
                        "n_pruned": s.counts[TrialStatus.PRUNED],
                    }
                )
    diff_records = [
        {
            "metric": d.metric,
            "config_hash": d.config_hash,
            "label": comp.labels[d.config_hash],
            "sweep": d.sweep,
            "reference": d.reference,
            "method": d.method,
            "n": d.n,
            "mean_diff": d.mean_diff,
            "ci_low": d.ci_low,
            "ci_high": d.ci_high,
            "p": d.p,
            "p_holm": d.p_holm,
            "notes": "; ".join(d.notes),
        }
        for d in comp.diffs
    ]
    files = [
        write_parquet(records, _SUMMARY_SCHEMA, out_dir / "compare_summary.parquet"),
        write_parquet(diff_records, _DIFF_SCHEMA, out_dir / "compare_differences.parquet"),
    ]
    markdown = out_dir / "compare.md"
    markdown.write_text(render_markdown(comp))
    files.append(markdown)
    return files
