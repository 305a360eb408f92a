"""``report.md``: the human-readable report of one sweep.

Sections: what was read, the ranked configuration table, the ablation table and the statistical tests
against the baseline (when one is given), the figures, and a short note on how to read the numbers —
the last because a three-seed report is easy to over-read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.report.aggregate import SweepReport
from orchestrator.report.stats import min_wilcoxon_pairs
from orchestrator.report.tables import ablation_table, comparison_table, metric_title, summary_table

__all__ = ["render_markdown"]

_PLOT_TITLES = {
    "learning_curves": "Learning curves",
    "ablation": "Configurations with confidence intervals",
    "alpha": "Learned coefficients α_t over training",
    "sliding_p": "Sliding replacement probability P over training",
    "optuna_history": "Optuna optimisation history",
    "optuna_importances": "Optuna parameter importances",
}


_SHOWN_IN_PAPER_SECTION = ("data_ratio",)


def render_markdown(
    report: SweepReport, plots: dict[str, str], plot_notes: list[str], paper_section: str | None = None
) -> str:
    """The whole document; ``plots`` maps plot names to file names relative to ``report.md``.

    ``paper_section`` is the Markdown of the data-ratio or ablation study (:mod:`orchestrator.report.paper`),
    placed right after the header: it is what such a sweep was run for.
    """
    sweep = report.sweep
    counts = sweep.status_counts()
    ci = f"{report.confidence:.0%}"
    lines = [
        f"# Sweep report: {sweep.name}",
        "",
        f"- source: `{sweep.source}`",
        f"- generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- runs (trial × seed): {len(sweep.trials)} ("
        + ", ".join(f"{n} {status.lower()}" for status, n in counts.items() if n)
        + f") in {len(report.summaries)} configurations",
        f"- ranked by: {metric_title(report.metric)} (`{report.metric}`, "
        f"{'higher' if report.mode == 'max' else 'lower'} is better)",
        f"- configurations are named by the keys that differ between them: "
        f"{', '.join(f'`{k}`' for k in report.keys) or 'none (one configuration)'}",
    ]
    if report.baseline is not None:
        lines.append(f"- baseline: {report.baseline.label} (`{report.baseline.config_hash}`)")
    for note in report.notes:
        lines.append(f"- **note:** {note}")
    group_notes = [f"{s.group.label}: {n}" for s in report.summaries for n in s.group.notes]
    lines += [f"- **note:** {n}" for n in group_notes]

    if paper_section:
        lines += ["", paper_section.rstrip()]
    lines += [
        "",
        f"## Configurations, ranked by {metric_title(report.metric)}",
        "",
        f"Mean ± half-width of the {ci} Student-t confidence interval over the completed seeds; failed and "
        "pruned trials are counted but excluded from every statistic.",
        "",
        summary_table(report).to_markdown(),
        "",
    ]

    if report.baseline is not None:
        lines += [
            "## Ablation table",
            "",
            f"Rows are the arms, named by how they differ from the {report.baseline_name} "
            f"({report.baseline.label}); "
            f"Δ is the mean paired-by-seed difference to it with its {ci} CI. Also in `ablation.tex`.",
            "",
            ablation_table(report).to_markdown(),
            "",
            "## Paired comparisons with the baseline",
            "",
        ]
        for metric in report.metrics:
            lines += [
                f"### {metric_title(metric)} (`{metric}`)",
                "",
                comparison_table(report, metric).to_markdown(),
                "",
            ]
    else:
        lines += [
            "## Paired comparisons",
            "",
            "No baseline was given, so no configuration is compared. Pass "
            "`--baseline KEY=VALUE [KEY=VALUE ...]` naming one configuration, e.g. "
            + (f"`--baseline {report.summaries[0].group.label.replace(', ', ' ')}`." if report.keys else "."),
            "",
        ]

    if plots or plot_notes:
        lines += ["## Figures", ""]
        for name, file in plots.items():
            if name in _SHOWN_IN_PAPER_SECTION and paper_section:
                continue
            lines += [f"### {_PLOT_TITLES.get(name, name)}", "", f"![{name}]({file})", ""]
        lines += [f"- {note}" for note in plot_notes]
        lines.append("")

    lines += [
        "## Reading these numbers",
        "",
        "- *Best-epoch* accuracy picks the best of all epochs on the test set itself (no validation split, "
        "as in the original code), so it is optimistic; *last-epoch* accuracy is not selected and is the "
        "fairer figure to compare.",
        "- Comparisons pair trials by seed (same data order and initialisation stream), test the paired "
        "differences with a t-test and a Wilcoxon signed-rank test, and correct the p-values of each "
        "metric's family of comparisons with Holm's method.",
        f"- A two-sided Wilcoxon test cannot reach p < 0.05 with fewer than {min_wilcoxon_pairs(0.05)} "
        "non-zero paired differences; with one seed there is no interval and no test at all.",
        "",
    ]
    return "\n".join(lines)
