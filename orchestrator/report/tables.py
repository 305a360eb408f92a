"""The report's tables, built once as rows of strings and rendered as terminal text, Markdown or LaTeX.

One builder per table keeps the numbers in the terminal, in ``report.md`` and in ``ablation.tex``
identical by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.training.records import BEST_TEST_TOP1
from orchestrator.records import TrialStatus
from orchestrator.report.aggregate import Comparison, SweepReport
from orchestrator.report.stats import Estimate, PairedComparison

__all__ = [
    "axis_label",
    "METRIC_TITLES",
    "Table",
    "ablation_table",
    "comparison_table",
    "format_diff",
    "format_estimate",
    "format_paired",
    "format_p",
    "summary_table",
]

METRIC_TITLES = {
    BEST_TEST_TOP1: "best-epoch test top-1",
    "last_test_top1": "last-epoch test top-1",
    "test_top1": "test top-1",
    "best_epoch_energy_uj": "energy per inference at the best epoch (µJ)",
    "best_epoch_firing_rate": "firing rate at the best epoch",
    "best_epoch": "best epoch",
    "epochs_run": "epochs run",
    "wall_time_s": "wall time (s)",
}
DASH = "—"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: str = ""
    """One character per column: ``l`` or ``r`` (default: first column left, the rest right)."""

    def _align(self) -> str:
        return self.align or "l" + "r" * (len(self.headers) - 1)

    def to_text(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
            for i, h in enumerate(self.headers)
        ]
        align = self._align()

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True)
            ).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(self.headers), rule, *(line(r) for r in self.rows)])

    def to_markdown(self) -> str:
        def escape(cell: str) -> str:
            return cell.replace("|", "\\|")

        marks = ["---:" if a == "r" else ":---" for a in self._align()]
        lines = ["| " + " | ".join(map(escape, self.headers)) + " |", "| " + " | ".join(marks) + " |"]
        lines += ["| " + " | ".join(map(escape, r)) + " |" for r in self.rows]
        return "\n".join(lines)

    def to_latex(self, caption: str = "", label: str = "") -> str:
        """A booktabs ``table`` environment, ready for a paper's ablation section."""

        def tex(cell: str) -> str:
            for old, new in (
                ("\\", r"\textbackslash{}"),
                ("_", r"\_"),
                ("%", r"\%"),
                ("&", r"\&"),
                ("#", r"\#"),
            ):
                cell = cell.replace(old, new)
            return cell.replace("±", r"$\pm$").replace(DASH, "--").replace("Δ", r"$\Delta$")

        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\begin{{tabular}}{{{self._align()}}}",
            r"\toprule",
            " & ".join(map(tex, self.headers)) + r" \\",
            r"\midrule",
            *(" & ".join(map(tex, r)) + r" \\" for r in self.rows),
            r"\bottomrule",
            r"\end{tabular}",
        ]
        if caption:
            lines.append(rf"\caption{{{tex(caption)}}}")
        if label:
            lines.append(rf"\label{{{label}}}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# number formatting


def format_number(value: float, digits: int = 2) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def format_mean_ci(est: Estimate, digits: int = 2) -> str:
    """``mean [low, high]`` of the t interval; the mean alone where there is no interval (one seed)."""
    interval = (
        "" if est.n < 2 else f" [{format_number(est.ci_low, digits)}, {format_number(est.ci_high, digits)}]"
    )
    return format_number(est.mean, digits) + interval


def section_markdown(heading: str, intro: str, table: Table, figure: str | None, alt: str) -> str:
    """A report section beside the main one (``pareto.md``, ``time_steps.md``): heading, what it shows,
    its table, and its figure when one was drawn."""
    lines = [f"## {heading}", "", intro, "", table.to_markdown()]
    if figure:
        lines += ["", f"![{alt}]({figure})"]
    return "\n".join(lines) + "\n"


def format_estimate(est: Estimate, digits: int = 2) -> str:
    """``mean ± half-width`` of the t interval; one seed shows its value and ``(n=1)``."""
    if est.n == 0:
        return DASH
    if est.n == 1:
        return f"{est.mean:.{digits}f} (n=1)"
    return f"{est.mean:.{digits}f} ± {est.half_width:.{digits}f}"


def format_diff(comparison: Comparison, digits: int = 2) -> str:
    """``+1.23 [0.40, 2.06]``; ``not enough seeds (n=1)`` where there is no interval."""
    return format_paired(comparison.result, digits)


def format_paired(r: PairedComparison, digits: int = 2) -> str:
    """A paired comparison's mean difference and CI, as :func:`format_diff` shows it."""
    if not r.enough_seeds:
        shown = f"{r.mean_diff:+.{digits}f}, " if math.isfinite(r.mean_diff) else ""
        return f"{shown}not enough seeds (n={r.n})"
    return f"{r.mean_diff:+.{digits}f} [{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]"


def format_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


_BOUNDED_HINTS = ("top1", "top5", "acc")


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric can take when it is an accuracy (0–100 %): figures clip CIs to it; the
    numbers in tables are never clipped."""
    return (0.0, 100.0) if any(h in metric for h in _BOUNDED_HINTS) else None


def metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def axis_label(metric: str, test_set_sizes: Sequence[int] = (), detail: str = "") -> str:
    """A figure axis for ``metric``: its title, ``(%)`` and ``detail`` for an accuracy, and how many test
    recordings each accuracy was computed on ("n = 1,000 test recordings"; a range when the trials
    differ; nothing when the sweep did not record it)."""
    if metric_bounds(metric) is None:
        return metric_title(metric) + (f" ({detail})" if detail else "")
    inside = ", ".join(part for part in ("%", detail) if part)
    label = f"{metric_title(metric)} ({inside})"
    if len(test_set_sizes) == 1:
        label += f"\nn = {test_set_sizes[0]:,} test recordings"
    elif test_set_sizes:
        label += f"\nn = {min(test_set_sizes):,}–{max(test_set_sizes):,} test recordings"
    return label


# --------------------------------------------------------------------------------------------------
# tables


def summary_table(report: SweepReport, *, compact: bool = False, digits: int = 2) -> Table:
    """Ranked configurations: counts, mean ± CI of each summarised metric, median best epoch, Δ.

    ``compact`` (the terminal) drops the hash and std columns and uses short headers.
    """
    ci = f"{report.confidence:.0%} CI"
    if compact:
        headers = ["#", "configuration", "done/failed/pruned"]
        headers += [f"{metric_title(m).replace(' test top-1', '')} ± CI" for m in report.metrics]
        headers.append("median best epoch")
    else:
        headers = ["#", "configuration", "hash", "done", "failed", "pruned"]
        for metric in report.metrics:
            headers += [f"{metric_title(metric)} (mean ± {ci})", "std"]
        headers.append("median best epoch")
    diffs = {c.group.config_hash: c for c in report.comparisons_for(report.metric)}
    if report.baseline is not None:
        title = "Δ vs baseline" if compact else f"Δ {metric_title(report.metric)} vs baseline [{ci}]"
        headers += [title, "p (t, Holm)"]
    rows = []
    for s in report.summaries:
        counts = s.counts
        is_base = report.baseline is not None and s.group is report.baseline
        row = [str(s.rank) if s.rank else DASH, s.group.label + (" (baseline)" if is_base else "")]
        if compact:
            row.append(f"{counts['COMPLETE']}/{counts['FAILED']}/{counts['PRUNED']}")
            row += [format_estimate(s.estimates[m], digits) for m in report.metrics]
        else:
            row += [
                s.group.config_hash,
                str(counts[TrialStatus.COMPLETE]),
                str(counts[TrialStatus.FAILED]),
                str(counts[TrialStatus.PRUNED]),
            ]
            for metric in report.metrics:
                est = s.estimates[metric]
                row += [format_estimate(est, digits), format_number(est.std, digits)]
        row.append(format_number(s.median_best_epoch + 1, 1))  # epochs are counted from 1 where people read
        if report.baseline is not None:
            c = diffs.get(s.group.config_hash)
            row += [format_diff(c, digits), format_p(c.p_ttest_holm)] if c else ["baseline", DASH]
        rows.append(row)
    align = "rl" + ("r" if compact else "lrrr") + "r" * (len(headers) - (3 if compact else 6))
    return Table(headers, rows, align)


def comparison_table(report: SweepReport, metric: str, digits: int = 2) -> Table:
    """Paired-by-seed tests of every configuration against the baseline on ``metric``."""
    ci = f"{report.confidence:.0%} CI"
    headers = [
        "configuration (differs from baseline in)",
        "paired seeds",
        f"mean Δ [{ci}]",
        "t",
        "p (t)",
        "p (t, Holm)",
        "p (Wilcoxon)",
        "p (Wilcoxon, Holm)",
        "notes",
    ]
    rows = []
    ranks = {s.group.config_hash: s.rank for s in report.summaries}
    comparisons = sorted(report.comparisons_for(metric), key=lambda c: ranks.get(c.group.config_hash) or 1e9)
    for c in comparisons:
        r = c.result
        rows.append(
            [
                c.delta_label,
                str(r.n),
                format_diff(c, digits),
                format_number(r.t_statistic, 2),
                format_p(r.p_ttest),
                format_p(c.p_ttest_holm),
                format_p(r.p_wilcoxon),
                format_p(c.p_wilcoxon_holm),
                "; ".join(c.notes),
            ]
        )
    return Table(headers, rows, "l" + "r" * 7 + "l")


def ablation_table(report: SweepReport, digits: int = 2) -> Table:
    """Rows = arms (the baseline first), columns = mean ± CI and the paired Δ to the baseline."""
    if report.baseline is None:
        raise ValueError("an ablation table needs a baseline")
    ci = f"{report.confidence:.0%} CI"
    metrics = [m for m in report.metrics if m in (BEST_TEST_TOP1, "last_test_top1")] or report.metrics
    headers = ["arm", "seeds"]
    for metric in metrics:
        headers += [f"{metric_title(metric)} (mean ± {ci})", f"Δ [{ci}]"]
    base = report.summary_of(report.baseline.config_hash)
    rows = [[f"{report.baseline_name}: {report.baseline.label}", str(len(base.seeds))]]
    for metric in metrics:
        rows[0] += [format_estimate(base.estimates[metric], digits), DASH]
    by_metric = {m: {c.group.config_hash: c for c in report.comparisons_for(m)} for m in metrics}
    for s in report.summaries:
        if s.group is report.baseline:
            continue
        first = by_metric[metrics[0]][s.group.config_hash]
        row = [first.delta_label, str(len(s.seeds))]
        for metric in metrics:
            row += [
                format_estimate(s.estimates[metric], digits),
                format_diff(by_metric[metric][s.group.config_hash], digits),
            ]
        rows.append(row)
    return Table(headers, rows)
