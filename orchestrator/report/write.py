"""Write every output of a report into one directory: Markdown, Parquet, LaTeX and PNG files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.report.aggregate import SweepReport
from orchestrator.report.html import render_html
from orchestrator.report.markdown import render_markdown
from orchestrator.report.outputs import (
    comparison_records,
    comparisons_schema,
    summary_records,
    summary_schema,
    write_parquet,
)
from orchestrator.report.plots import plot_report
from orchestrator.report.tables import ablation_table, metric_title

__all__ = ["WrittenReport", "write_report"]


@dataclass
class WrittenReport:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    plots: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Why a figure is missing (no α_t columns, no Optuna study, ...)."""

    def file(self, name: str) -> Path:
        return self.out_dir / name


def write_report(
    report: SweepReport,
    out_dir: Path,
    *,
    plots: bool = True,
    study=None,
    paper=None,
    landscapes=(),
    sections=(),
) -> WrittenReport:
    """Write ``summary.parquet``, ``comparisons.parquet``, the PNGs, ``ablation.tex`` and ``report.md``.

    ``study`` is the sweep's Optuna study (``orchestrator.report.study.find_study``) when it has one;
    ``paper`` a :class:`~orchestrator.report.paper.DataRatioStudy` or
    :class:`~orchestrator.report.paper.AblationStudy`, whose files are written too and whose section
    leads ``report.md``. ``landscapes`` are loss-landscape PNGs of the sweep's runs
    (``spikesweep landscape``), shown in their own section. ``sections`` are further studies of the
    sweep — :class:`~orchestrator.report.pareto.ParetoStudy` (a multi-objective sweep, or ``--pareto``),
    :class:`~orchestrator.report.time_steps.SweepTimeSteps` (``--time-steps``) — each with a ``heading``,
    ``intro()``, ``table()`` and ``write(out_dir, plots)``: their files, and a section of ``report.md``
    and ``report.html`` each.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = WrittenReport(out_dir)
    written.files.append(
        write_parquet(summary_records(report), summary_schema(report), out_dir / "summary.parquet")
    )
    written.files.append(
        write_parquet(comparison_records(report), comparisons_schema(), out_dir / "comparisons.parquet")
    )
    if report.baseline is not None:
        tex = out_dir / "ablation.tex"
        caption = (
            f"{report.sweep.name}: {metric_title(report.metric)}, mean ± {report.confidence:.0%} CI over "
            f"seeds, and the paired difference Δ to the {report.baseline_name}."
        )
        tex.write_text(
            ablation_table(report).to_latex(caption=caption, label=f"tab:{report.sweep.name}-ablation")
        )
        written.files.append(tex)

    if plots:
        drawn = plot_report(report, out_dir)
        written.plots.update(drawn)
        written.notes.extend(drawn.notes)
        if study is not None:
            from orchestrator.report.study import plot_study

            study_plots, study_notes = plot_study(study, out_dir)
            written.plots.update(study_plots)
            written.notes.extend(study_notes)
        written.files.extend(written.plots.values())

    paper_section = None
    paper_plots: dict[str, Path] = {}
    if paper is not None:
        for name, path in paper.write(out_dir, plots=plots).items():
            if name.endswith(".png"):
                written.plots[name.removesuffix(".png")] = path
                paper_plots[name.removesuffix(".png")] = path
            written.files.append(path)
        figure = "data_ratio.png" if plots and paper.kind == "data_ratio" else None
        paper_section = paper.markdown(figure)

    drawn_sections = []  # (section, its figure or None): each shown in its own place, not among the figures
    for section in sections:
        files = section.write(out_dir, plots=plots)
        drawn_sections.append((section, files.get("png")))
        written.files.extend(path for name, path in files.items() if name != "md")
        paper_section = (paper_section or "") + "\n" + files["md"].read_text()

    if landscapes:
        section = ["## Loss landscapes", "", "Written by `spikesweep landscape` for runs of this sweep:", ""]
        for path in landscapes:
            section += [f"### {path.parent.parent.parent.name}/{path.parent.parent.name}: {path.stem}", ""]
            section += [f"![{path.stem}]({os.path.relpath(path, out_dir)})", ""]
        paper_section = (paper_section or "") + "\n" + "\n".join(section)

    markdown = out_dir / "report.md"
    markdown.write_text(
        render_markdown(report, {k: p.name for k, p in written.plots.items()}, written.notes, paper_section)
    )
    written.files.append(markdown)
    page = out_dir / "report.html"
    other_plots = {k: p for k, p in written.plots.items() if k not in paper_plots}
    page.write_text(
        render_html(report, other_plots, written.notes, paper, paper_plots, list(landscapes), drawn_sections)
    )
    written.files.append(page)
    return written
