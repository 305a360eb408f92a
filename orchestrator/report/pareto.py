"""The accuracy–energy trade-off of a sweep: each configuration's seed means of two (or more) metrics,
with their confidence intervals, and the configurations no other one beats in every objective.

``spikesweep report SWEEP --pareto best_test_top1:max,best_epoch_energy_uj:min`` adds ``pareto.md``,
``pareto.parquet`` and ``pareto.png`` (two objectives: a scatter with both CIs, the front joined).
The front is taken on the seed means; a configuration is on it when no other configuration is at least
as good in every objective and strictly better in one. With few seeds the CIs say how much that
ordering can be trusted — they are drawn and tabulated beside the front, never folded into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.front import pareto_mask
from orchestrator.report.aggregate import SweepReport
from orchestrator.report.load import ReportInputError
from orchestrator.report.stats import Estimate, describe
from orchestrator.report.tables import (
    Table,
    axis_label,
    format_mean_ci,
    metric_title,
    section_markdown,
)

__all__ = ["ParetoStudy", "build_pareto", "pareto_mask", "parse_objectives"]


def parse_objectives(text: str) -> list[tuple[str, str]]:
    """``"best_test_top1:max,best_epoch_energy_uj:min"`` → ``[(metric, mode), ...]`` (two or more)."""
    objectives = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        metric, _, mode = part.partition(":")
        if mode not in ("max", "min"):
            raise ReportInputError(f"--pareto {part!r}: write METRIC:max or METRIC:min")
        objectives.append((metric, mode))
    if len(objectives) < 2 or len({m for m, _ in objectives}) != len(objectives):
        raise ReportInputError(
            f"--pareto {text!r}: name two or more different metrics, e.g. "
            "best_test_top1:max,best_epoch_energy_uj:min"
        )
    return objectives


@dataclass
class ParetoPoint:
    label: str
    config_hash: str
    estimates: dict[str, Estimate]
    on_front: bool


@dataclass
class ParetoStudy:
    sweep: str
    objectives: list[tuple[str, str]]
    confidence: float
    points: list[ParetoPoint]
    test_set_sizes: list[int]

    def front(self) -> list[ParetoPoint]:
        return [p for p in self.points if p.on_front]

    def table(self, digits: int = 4) -> Table:
        ci = f"{self.confidence:.0%} CI"
        headers = ["on front", "configuration"]
        for metric, mode in self.objectives:
            headers += [f"{metric_title(metric)} ({mode}; mean [{ci}])"]
        headers.append("n")
        rows = []
        for p in self.points:
            row = ["✓" if p.on_front else "", p.label]
            for metric, _ in self.objectives:
                row.append(format_mean_ci(p.estimates[metric], digits))
            row.append(str(min(p.estimates[m].n for m, _ in self.objectives)))
            rows.append(row)
        return Table(headers, rows)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for p in self.points:
            row: dict[str, Any] = {
                "configuration": p.label,
                "config_hash": p.config_hash,
                "on_front": p.on_front,
            }
            for metric, _ in self.objectives:
                e = p.estimates[metric]
                row |= {
                    f"{metric}_mean": e.mean,
                    f"{metric}_ci_low": e.ci_low,
                    f"{metric}_ci_high": e.ci_high,
                }
                row[f"{metric}_n"] = e.n
            out.append(row)
        return out

    heading = "Pareto front"

    def intro(self) -> str:
        names = " vs ".join(f"{metric_title(m)} ({mode})" for m, mode in self.objectives)
        return (
            f"{names}: seed means of each configuration, with {self.confidence:.0%} t intervals. ✓ marks "
            "the configurations no other one beats in every objective (taken on the means)."
        )

    def markdown(self, figure: str | None) -> str:
        return section_markdown(self.heading, self.intro(), self.table(), figure, self.heading)

    def write(self, out_dir: Path, plots: bool = True) -> dict[str, Path]:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415

        paths = {"parquet": out_dir / "pareto.parquet", "md": out_dir / "pareto.md"}
        pq.write_table(pa.Table.from_pylist(self.records()), paths["parquet"])
        figure = None
        if plots and len(self.objectives) == 2:
            paths["png"] = plot_pareto(self, out_dir / "pareto.png")
            figure = paths["png"].name
        paths["md"].write_text(self.markdown(figure))
        return paths


def build_pareto(report: SweepReport, objectives: list[tuple[str, str]]) -> ParetoStudy:
    """Every configuration with COMPLETE trials, its estimates of each objective, and the front."""
    available = report.sweep.metric_names()
    missing = [m for m, _ in objectives if m not in available]
    if missing:
        raise ReportInputError(
            f"--pareto: sweep {report.sweep.name!r} has no per-trial {', '.join(missing)}; available: "
            f"{', '.join(available)}"
        )
    points = []
    for summary in report.summaries:
        trials = summary.group.completed()
        estimates = {}
        for metric, _ in objectives:
            values = [t.metrics[metric] for t in trials if np.isfinite(t.metrics.get(metric, np.nan))]
            estimates[metric] = describe(values, report.confidence)
        if all(e.n for e in estimates.values()):
            points.append(ParetoPoint(summary.group.label, summary.group.config_hash, estimates, False))
    if not points:
        raise ReportInputError("--pareto: no configuration has a complete trial with every objective")
    means = np.array([[p.estimates[m].mean for m, _ in objectives] for p in points])
    for p, on in zip(points, pareto_mask(means, [mode for _, mode in objectives]), strict=True):
        p.on_front = bool(on)
    return ParetoStudy(
        report.sweep.name, objectives, report.confidence, points, report.sweep.test_set_sizes()
    )


def plot_pareto(study: ParetoStudy, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    (x_metric, x_mode), (y_metric, y_mode) = study.objectives
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    for i, p in enumerate(study.points):
        ex, ey = p.estimates[x_metric], p.estimates[y_metric]
        xerr = None if ex.n < 2 else [[ex.mean - ex.ci_low], [ex.ci_high - ex.mean]]
        yerr = None if ey.n < 2 else [[ey.mean - ey.ci_low], [ey.ci_high - ey.mean]]
        marker = "o" if p.on_front else "x"
        ax.errorbar(
            ex.mean,
            ey.mean,
            xerr=xerr,
            yerr=yerr,
            fmt=marker,
            color=f"C{i % 10}",
            capsize=3,
            label=f"{p.label} (n={min(ex.n, ey.n)})" + (" — front" if p.on_front else ""),
        )
    front = sorted(study.front(), key=lambda p: p.estimates[x_metric].mean)
    ax.plot(
        [p.estimates[x_metric].mean for p in front],
        [p.estimates[y_metric].mean for p in front],
        "-",
        color="0.4",
        linewidth=1,
        zorder=0,
    )
    ax.set_xlabel(axis_label(x_metric, study.test_set_sizes, f"{x_mode}, mean, {study.confidence:.0%} CI"))
    ax.set_ylabel(axis_label(y_metric, study.test_set_sizes, f"{y_mode}, mean, {study.confidence:.0%} CI"))
    ax.set_title(f"{study.sweep}: Pareto front")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
