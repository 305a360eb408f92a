"""The paper's two figures, from any sweep of the right shape: the data-ratio curve and the ablation table.

Report kinds (``spikesweep report --kind``, or the space's ``report.kind``, or detected from the space):

- ``data_ratio`` — the sweep varies ``data.traindata_ratio`` (the fraction of event training recordings
  kept) across arms. Drawn: accuracy vs fraction per arm, mean with its t confidence band, and below it
  the paired-by-seed Δ (arm − baseline arm) at each fraction with its CI and Holm-corrected p-values.
  Holm's family is every (arm, fraction) comparison of the figure, so a reader may scan the whole
  figure for significant fractions without inflating the error rate.
- ``ablation`` — the sweep's arms switch parts of the method off. Drawn as papers do: one ✓/✗ column
  per component (static stream, knowledge-transfer loss, coefficients, sliding, V channel) read from
  each arm's configuration, mean ± std over seeds, and Δ vs the baseline arm (the full method) with its
  CI and Holm-corrected p-value, from the same paired comparisons as the standard report.
- ``standard`` — the ranked table and the paired comparisons only.

Where the dataset pair is a published one, a "published" column (and, for the data-ratio curve, a
dashed curve) quotes the paper's figure for the configuration with the same components
(:mod:`orchestrator.report.published`); it is labelled as quoted, never mixed into a statistic.

Statistics are the report's own (:mod:`orchestrator.report.stats`, scipy underneath); this module only
arranges them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from orchestrator.report.aggregate import ConfigGroup, SweepReport, config_label, format_value, same_value
from orchestrator.report.load import ReportInputError
from orchestrator.report.outputs import write_parquet
from orchestrator.report.published import (
    EVENT_ONLY,
    FULL_METHOD,
    PUBLISHED_METRIC,
    Components,
    published_ablation,
    published_data_ratio,
    published_ratio_curve,
)
from orchestrator.report.stats import Estimate, PairedComparison, holm, paired_comparison
from orchestrator.report.tables import (
    DASH,
    Table,
    axis_label,
    format_estimate,
    format_number,
    format_p,
    format_paired,
    metric_bounds,
    metric_title,
)
from orchestrator.space import ARM_KEY, DATA_RATIO_KEY, REPORT_KINDS

__all__ = [
    "AblationStudy",
    "DataRatioStudy",
    "build_ablation",
    "build_data_ratio",
    "components_of",
    "detect_kind",
]

SLIDING_SCHEDULES = ("poly", "linear", "cosine")
"""Schedules that slide gradually from static to event inputs; ``step`` is the original "no sliding"."""


# --------------------------------------------------------------------------------------------------
# kind


def detect_kind(space: dict | None, requested: str | None = None) -> str:
    """The report kind: ``requested`` (``--kind``), else the space's ``report.kind``, else from its shape.

    Shape: a space that varies ``data.traindata_ratio`` is a data-ratio study; one with arms and an
    arm as its report baseline is an ablation; anything else gets the standard report.
    """
    if requested is not None:
        if requested not in REPORT_KINDS:
            raise ReportInputError(
                f"--kind {requested!r} is not a report kind; allowed: {', '.join(REPORT_KINDS)}"
            )
        return requested
    space = space or {}
    section = space.get("report") if isinstance(space.get("report"), dict) else {}
    declared = section.get("kind")
    if declared in REPORT_KINDS:
        return declared
    parameters = space.get("parameters") if isinstance(space.get("parameters"), dict) else {}
    if DATA_RATIO_KEY in parameters:
        return "data_ratio"
    baseline = section.get("baseline") if isinstance(section.get("baseline"), dict) else {}
    if space.get("arms") and ARM_KEY in baseline:
        return "ablation"
    return "standard"


# --------------------------------------------------------------------------------------------------
# components of a configuration


def components_of(config: dict[str, Any]) -> Components:
    """Which parts of the method a flat run configuration switches on.

    The static stream exists for the transfer models (registry names ``transfer_*``; a test checks the
    rule against every registered model). The transfer loss needs the static stream, ``domain_loss``
    and β > 0, and is absent under ``legacy_nosliding_drops_domain`` with the ``step`` schedule (the
    original silently dropped it there, spec §11 item 1).
    """
    static = str(config.get("model.name", "")).startswith("transfer_")
    schedule = config.get("sliding.schedule")
    dropped = bool(config.get("method.legacy_nosliding_drops_domain")) and schedule == "step"
    beta = config.get("method.beta")
    loss = static and bool(config.get("method.domain_loss")) and _number(beta) > 0 and not dropped
    coefficient = None
    if loss:
        fixed = config.get("method.fixed_coef")
        if not config.get("method.regularization"):
            coefficient = "1"
        elif fixed is None or (isinstance(fixed, float) and math.isnan(fixed)):
            coefficient = "learnable"
        else:
            coefficient = f"fixed {format_value(float(fixed))}"
    return Components(
        static_stream=static,
        transfer_loss=loss,
        coefficient=coefficient,
        sliding=schedule if static and schedule in SLIDING_SCHEDULES else None,
        v_channel=static and config.get("method.static_channel") == "v",
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pair(groups: list[ConfigGroup]) -> str | None:
    pairs = {str(g.config.get("data.pair")) for g in groups}
    return pairs.pop() if len(pairs) == 1 else None


# --------------------------------------------------------------------------------------------------
# data-ratio study


@dataclass
class RatioPoint:
    arm: str
    fraction: float
    estimate: Estimate
    seeds: list[int]
    published: float | None = None


@dataclass
class RatioDelta:
    arm: str
    fraction: float
    seeds: list[int]
    result: PairedComparison
    p_ttest_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan


@dataclass
class DataRatioStudy:
    sweep: str
    metric: str
    confidence: float
    pair: str | None
    arms: list[str]
    """Arm labels, the baseline first."""
    baseline_arm: str | None
    fractions: list[float]
    points: list[RatioPoint]
    deltas: list[RatioDelta]
    notes: list[str] = field(default_factory=list)
    published_curves: dict[str, dict[float, float]] = field(default_factory=dict)
    """Arm → the paper's whole quoted curve for the configuration with the same components."""
    test_set_sizes: list[int] = field(default_factory=list)
    """Test recordings per accuracy (one value when every fraction is scored on the same test split)."""

    kind = "data_ratio"

    def point(self, arm: str, fraction: float) -> RatioPoint | None:
        return next((p for p in self.points if p.arm == arm and p.fraction == fraction), None)

    def delta(self, arm: str, fraction: float) -> RatioDelta | None:
        return next((d for d in self.deltas if d.arm == arm and d.fraction == fraction), None)

    @property
    def has_published(self) -> bool:
        return any(p.published is not None for p in self.points)

    def table(self, digits: int = 2) -> Table:
        ci = f"{self.confidence:.0%} CI"
        headers = ["fraction", "arm", "seeds", f"mean ± {ci}", "std"]
        if self.baseline_arm is not None:
            headers += [f"Δ vs {self.baseline_arm} [{ci}]", "p (t, Holm)", "p (Wilcoxon, Holm)"]
        if self.has_published:
            headers.append("published (quoted)")
        rows = []
        for fraction in self.fractions:
            for arm in self.arms:
                p = self.point(arm, fraction)
                if p is None:
                    continue
                row = [f"{fraction:g}", arm, str(p.estimate.n), format_estimate(p.estimate, digits)]
                row.append(format_number(p.estimate.std, digits))
                if self.baseline_arm is not None:
                    d = self.delta(arm, fraction)
                    if arm == self.baseline_arm:
                        row += ["baseline", DASH, DASH]
                    elif d is None:
                        row += [DASH, DASH, DASH]
                    else:
                        row += [format_paired(d.result, digits), format_p(d.p_ttest_holm)]
                        row.append(format_p(d.p_wilcoxon_holm))
                if self.has_published:
                    row.append(DASH if p.published is None else f"{p.published:.2f}")
                rows.append(row)
        return Table(headers, rows, "rl" + "r" * (len(headers) - 2))

    def records(self) -> list[dict[str, Any]]:
        out = []
        for p in self.points:
            d = self.delta(p.arm, p.fraction)
            r = d.result if d is not None else None
            out.append(
                {
                    "sweep": self.sweep,
                    "metric": self.metric,
                    "arm": p.arm,
                    "is_baseline": p.arm == self.baseline_arm,
                    "fraction": p.fraction,
                    "n": p.estimate.n,
                    "seeds": p.seeds,
                    "mean": p.estimate.mean,
                    "std": p.estimate.std,
                    "ci_low": p.estimate.ci_low,
                    "ci_high": p.estimate.ci_high,
                    "delta_n": r.n if r else None,
                    "delta_mean": r.mean_diff if r else None,
                    "delta_ci_low": r.ci_low if r else None,
                    "delta_ci_high": r.ci_high if r else None,
                    "p_ttest": r.p_ttest if r else None,
                    "p_ttest_holm": d.p_ttest_holm if d else None,
                    "p_wilcoxon": r.p_wilcoxon if r else None,
                    "p_wilcoxon_holm": d.p_wilcoxon_holm if d else None,
                    "published": p.published,
                }
            )
        return out

    def markdown(self, figure: str | None) -> str:
        ci = f"{self.confidence:.0%}"
        lines = [
            "## Data-ratio study",
            "",
            f"{metric_title(self.metric)} against the fraction of event training recordings kept "
            f"(`{DATA_RATIO_KEY}`), mean ± {ci} t-interval over seeds per arm.",
        ]
        if self.baseline_arm is not None:
            lines.append(
                f"Δ is the paired-by-seed difference to the {self.baseline_arm} arm at the same fraction, "
                f"with its {ci} CI; p-values are Holm-corrected over all {len(self.deltas)} comparisons."
            )
        if self.has_published:
            lines.append(
                "The *published* column quotes the paper's figure for this dataset (spec §10); it is not "
                "measured here."
            )
        lines += ["", self.table().to_markdown(), ""]
        if figure:
            lines += [f"![data-ratio curve]({figure})", ""]
        lines += [f"- **note:** {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, plots: bool = True) -> dict[str, Path]:
        files = {
            "data_ratio.parquet": write_parquet(
                self.records(), _RATIO_SCHEMA, out_dir / "data_ratio.parquet"
            ),
        }
        tex = out_dir / "data_ratio.tex"
        tex.write_text(
            self.table().to_latex(
                caption=f"{self.sweep}: {metric_title(self.metric)} vs the fraction of event training data.",
                label=f"tab:{self.sweep}-data-ratio",
            )
        )
        files["data_ratio.tex"] = tex
        if plots:
            files["data_ratio.png"] = plot_data_ratio(self, out_dir / "data_ratio.png")
        md = out_dir / "data_ratio.md"
        md.write_text(self.markdown("data_ratio.png" if plots else None))
        files["data_ratio.md"] = md
        return files


_RATIO_SCHEMA = pa.schema(
    [
        pa.field("sweep", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("is_baseline", pa.bool_()),
        pa.field("fraction", pa.float64()),
        pa.field("n", pa.int64()),
        pa.field("seeds", pa.list_(pa.int64())),
        pa.field("mean", pa.float64()),
        pa.field("std", pa.float64()),
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("delta_n", pa.int64()),
        pa.field("delta_mean", pa.float64()),
        pa.field("delta_ci_low", pa.float64()),
        pa.field("delta_ci_high", pa.float64()),
        pa.field("p_ttest", pa.float64()),
        pa.field("p_ttest_holm", pa.float64()),
        pa.field("p_wilcoxon", pa.float64()),
        pa.field("p_wilcoxon_holm", pa.float64()),
        pa.field("published", pa.float64()),
    ]
)


def _arm_label(group: ConfigGroup, keys: list[str]) -> str:
    if ARM_KEY in group.config:
        return str(group.config[ARM_KEY])
    return config_label(group.config, keys) if keys else "(one arm)"


def build_data_ratio(report: SweepReport, baseline: dict[str, Any] | None) -> DataRatioStudy:
    """Arrange ``report``'s configurations as arms × fractions; ``baseline`` picks the baseline arm.

    Raises :class:`ReportInputError` when the sweep does not vary the fraction, when two configurations
    fall on the same (arm, fraction) cell, or when ``baseline`` matches no arm or several.
    """
    groups = [s.group for s in report.summaries]
    fractions = sorted({float(g.config[DATA_RATIO_KEY]) for g in groups if DATA_RATIO_KEY in g.config})
    if len(fractions) < 2:
        shown = ", ".join(f"{f:g}" for f in fractions) or "none"
        raise ReportInputError(
            f"a data_ratio report needs runs at two or more values of {DATA_RATIO_KEY} (the fraction of "
            f"event training recordings); sweep {report.sweep.name!r} has {shown}. Keys that vary here: "
            f"{', '.join(report.keys) or 'none'}. Add "
            f"`parameters: {{{DATA_RATIO_KEY}: [0.1, 0.25, 0.5, 1.0]}}` to the space, or report it with "
            "--kind standard"
        )
    arm_keys = [k for k in report.keys if k != DATA_RATIO_KEY]
    cells: dict[tuple[str, float], ConfigGroup] = {}
    arms: list[str] = []
    for group in groups:
        arm = _arm_label(group, arm_keys)
        fraction = float(group.config[DATA_RATIO_KEY])
        if (arm, fraction) in cells:
            raise ReportInputError(
                f"two configurations of arm {arm!r} ran at {DATA_RATIO_KEY}={fraction:g} "
                f"({cells[arm, fraction].label}; {group.label}): a data-ratio study needs one per cell"
            )
        cells[arm, fraction] = group
        if arm not in arms:
            arms.append(arm)

    baseline_arm = _baseline_arm(cells, baseline, arms) if baseline else None
    notes = []
    if baseline_arm is None:
        notes.append("no baseline arm (report.baseline or --baseline arm=NAME): curves only, no Δ")
    else:
        arms = [baseline_arm, *(a for a in arms if a != baseline_arm)]

    pair = _pair(groups)
    summaries = {s.group.config_hash: s for s in report.summaries}
    points: list[RatioPoint] = []
    published_curves: dict[str, dict[float, float]] = {}
    for (arm, fraction), group in cells.items():
        summary = summaries[group.config_hash]
        published = None
        if report.metric == PUBLISHED_METRIC and pair is not None:
            role = {EVENT_ONLY: "baseline", FULL_METHOD: "method"}.get(components_of(group.config))
            if role is not None:
                published = published_data_ratio(pair, role, fraction)
                published_curves.setdefault(arm, published_ratio_curve(pair, role))
        points.append(RatioPoint(arm, fraction, summary.estimates[report.metric], summary.seeds, published))
    points.sort(key=lambda p: (fractions.index(p.fraction), arms.index(p.arm)))

    deltas: list[RatioDelta] = []
    if baseline_arm is not None:
        for arm in arms[1:]:
            for fraction in fractions:
                group, base = cells.get((arm, fraction)), cells.get((baseline_arm, fraction))
                if group is None or base is None:
                    continue
                values, base_values = group.seed_values(report.metric), base.seed_values(report.metric)
                seeds = sorted(set(values) & set(base_values))
                result = paired_comparison(
                    [values[s] for s in seeds], [base_values[s] for s in seeds], confidence=report.confidence
                )
                deltas.append(RatioDelta(arm, fraction, seeds, result))
        for d, pt, pw in zip(
            deltas,
            holm([d.result.p_ttest for d in deltas]),
            holm([d.result.p_wilcoxon for d in deltas]),
            strict=True,
        ):
            d.p_ttest_holm, d.p_wilcoxon_holm = float(pt), float(pw)
    missing = [(a, f) for a in arms for f in fractions if (a, f) not in cells]
    if missing:
        notes.append("cells without runs: " + ", ".join(f"{a} at {f:g}" for a, f in missing))
    return DataRatioStudy(
        report.sweep.name,
        report.metric,
        report.confidence,
        pair,
        arms,
        baseline_arm,
        fractions,
        points,
        deltas,
        notes,
        {arm: curve for arm, curve in published_curves.items() if curve},
        report.sweep.test_set_sizes(),
    )


def _baseline_arm(
    cells: dict[tuple[str, float], ConfigGroup], baseline: dict[str, Any], arms: list[str]
) -> str:
    if DATA_RATIO_KEY in baseline:
        raise ReportInputError(
            f"--baseline picks an arm, at every fraction: leave {DATA_RATIO_KEY} out of it"
        )
    matched = sorted(
        {
            arm
            for (arm, _), g in cells.items()
            if all(same_value(g.config.get(k), v) for k, v in baseline.items())
        }
    )
    asked = ", ".join(f"{k}={format_value(v)}" for k, v in baseline.items())
    if len(matched) != 1:
        found = "no arm" if not matched else f"{len(matched)} arms ({', '.join(matched)})"
        raise ReportInputError(f"--baseline {asked} matches {found}; arms: {', '.join(arms)}")
    return matched[0]


def plot_data_ratio(study: DataRatioStudy, path: Path) -> Path:
    """Accuracy vs fraction per arm with CI bands; below, the paired Δ per fraction with CI bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    panels = 2 if study.deltas else 1
    fig = Figure(figsize=(7.5, 4.2 + 2.6 * (panels - 1)))
    gs = fig.add_gridspec(panels, 1, height_ratios=[3, 2][:panels], hspace=0.08)
    ax = fig.add_subplot(gs[0])
    bounds = metric_bounds(study.metric)
    x = np.asarray(study.fractions)
    for i, arm in enumerate(study.arms):
        pts = [study.point(arm, f) for f in study.fractions]
        mean = np.array([p.estimate.mean if p else np.nan for p in pts])
        low = np.array([p.estimate.ci_low if p else np.nan for p in pts])
        high = np.array([p.estimate.ci_high if p else np.nan for p in pts])
        if bounds is not None:
            low, high = np.clip(low, *bounds), np.clip(high, *bounds)
        n = max((p.estimate.n for p in pts if p), default=0)
        color = f"C{i}"
        ax.plot(x, mean, "o-", color=color, label=f"{arm} (n={n} seeds)")
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        curve = study.published_curves.get(arm)
        if curve:
            ax.plot(
                list(curve),
                list(curve.values()),
                "s--",
                color=color,
                mfc="none",
                alpha=0.7,
                label=f"{arm}: published {study.pair} (quoted)",
            )
    ax.set_ylabel(axis_label(study.metric, study.test_set_sizes))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{study.sweep}: {metric_title(study.metric)} vs event training data")
    ax.set_xticks(x, [f"{f:g}" for f in study.fractions])
    if panels == 2:
        ax.tick_params(labelbottom=False)
        dax = fig.add_subplot(gs[1], sharex=ax)
        others = study.arms[1:]
        width = 0.012 * max(1.0, float(x.max() - x.min()))
        for i, arm in enumerate(others, start=1):
            for d in (d for d in study.deltas if d.arm == arm):
                r = d.result
                offset = (i - (len(others) + 1) / 2) * width
                err = (
                    None
                    if not math.isfinite(r.ci_low)
                    else [[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]]
                )
                dax.errorbar(d.fraction + offset, r.mean_diff, yerr=err, fmt="o", color=f"C{i}", capsize=4)
                if math.isfinite(d.p_ttest_holm):
                    dax.annotate(
                        f"p {format_p(d.p_ttest_holm)}"
                        if d.p_ttest_holm < 1e-4
                        else f"p={format_p(d.p_ttest_holm)}",
                        (d.fraction + offset, r.ci_high if math.isfinite(r.ci_high) else r.mean_diff),
                        textcoords="offset points",
                        xytext=(0, 4),
                        ha="center",
                        fontsize="x-small",
                    )
        dax.axhline(0.0, color="black", linewidth=0.8)
        dax.set_ylabel(f"Δ vs {study.baseline_arm}\n(paired, {study.confidence:.0%} CI)")
        dax.set_xlabel(f"fraction of event training recordings ({DATA_RATIO_KEY})")
        dax.grid(alpha=0.3)
    else:
        ax.set_xlabel(f"fraction of event training recordings ({DATA_RATIO_KEY})")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


# --------------------------------------------------------------------------------------------------
# ablation table


@dataclass
class AblationRow:
    label: str
    components: Components
    estimate: Estimate
    seeds: list[int]
    is_baseline: bool
    comparison: Any = None
    """The report's :class:`~orchestrator.report.aggregate.Comparison` against the baseline."""
    published: float | None = None


@dataclass
class AblationStudy:
    sweep: str
    metric: str
    confidence: float
    baseline_name: str
    rows: list[AblationRow]

    kind = "ablation"

    @property
    def has_published(self) -> bool:
        return any(r.published is not None for r in self.rows)

    def table(self, digits: int = 2) -> Table:
        ci = f"{self.confidence:.0%} CI"
        headers = ["arm", "static stream", "transfer loss", "coefficients", "sliding", "V channel", "seeds"]
        headers += [f"{metric_title(self.metric)} (mean ± std)", f"Δ vs {self.baseline_name} [{ci}]"]
        headers += ["p (t, Holm)", "p (Wilcoxon, Holm)"]
        if self.has_published:
            headers.append("published (quoted)")
        rows = []
        for r in self.rows:
            c = r.components
            na = DASH if not c.static_stream else None
            row = [
                r.label + (f" ({self.baseline_name})" if r.is_baseline else ""),
                _tick(c.static_stream),
                na or _tick(c.transfer_loss),
                na or (c.coefficient or DASH),
                na or (f"✓ {c.sliding}" if c.sliding else "✗"),
                na or _tick(c.v_channel),
                str(r.estimate.n),
                _mean_std(r.estimate, digits),
            ]
            if r.is_baseline or r.comparison is None:
                row += ["baseline" if r.is_baseline else DASH, DASH, DASH]
            else:
                row += [
                    format_paired(r.comparison.result, digits),
                    format_p(r.comparison.p_ttest_holm),
                    format_p(r.comparison.p_wilcoxon_holm),
                ]
            if self.has_published:
                row.append(DASH if r.published is None else f"{r.published:.2f}")
            rows.append(row)
        return Table(headers, rows, "l" + "c" * 5 + "r" * (len(headers) - 6))

    def markdown(self, figure: str | None = None) -> str:
        ci = f"{self.confidence:.0%}"
        lines = [
            "## Ablation",
            "",
            f"One row per arm: which components it keeps (✓) or drops (✗; — where there is no static "
            f"stream to apply them to), {metric_title(self.metric)} as mean ± std over seeds, and the "
            f"paired-by-seed Δ to the {self.baseline_name} with its {ci} CI and Holm-corrected p-values.",
        ]
        if self.has_published:
            lines.append(
                "The *published* column quotes the paper's figure for the arm with the same components "
                "(spec §10); it is not measured here."
            )
        lines += ["", self.table().to_markdown(), ""]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, plots: bool = True) -> dict[str, Path]:
        md = out_dir / "ablation_paper.md"
        md.write_text(self.markdown())
        tex = out_dir / "ablation_paper.tex"
        tex.write_text(
            self.table().to_latex(
                caption=(
                    f"{self.sweep}: ablation of the method. {metric_title(self.metric)}, mean $\\pm$ std "
                    f"over seeds; $\\Delta$ paired by seed against the {self.baseline_name}."
                ),
                label=f"tab:{self.sweep}-ablation-paper",
            )
        )
        return {"ablation_paper.md": md, "ablation_paper.tex": tex}


def _tick(value: bool) -> str:
    return "✓" if value else "✗"


def _mean_std(est: Estimate, digits: int) -> str:
    if est.n == 0:
        return DASH
    if est.n == 1:
        return f"{est.mean:.{digits}f} (n=1)"
    return f"{est.mean:.{digits}f} ± {est.std:.{digits}f}"


def build_ablation(report: SweepReport) -> AblationStudy:
    """The paper-style ablation table of ``report``, whose baseline must be the full-method arm."""
    if report.baseline is None:
        arms = sorted(
            {str(s.group.config.get(ARM_KEY)) for s in report.summaries if ARM_KEY in s.group.config}
        )
        listing = f"; arms: {', '.join(arms)}" if arms else "; this sweep has no arms"
        raise ReportInputError(
            "an ablation report compares every arm with a baseline arm (the full method): set "
            "`report: {baseline: {arm: NAME}}` in the space or pass --baseline arm=NAME" + listing
        )
    pair = _pair([s.group for s in report.summaries])
    comparisons = {c.group.config_hash: c for c in report.comparisons_for(report.metric)}
    keys = [k for k in report.keys if k != ARM_KEY]
    rows = []
    ordered = [report.summary_of(report.baseline.config_hash)] + [
        s for s in report.summaries if s.group is not report.baseline
    ]
    for s in ordered:
        components = components_of(s.group.config)
        published = None
        if report.metric == PUBLISHED_METRIC and pair is not None:
            published = published_ablation(pair, components)
        rows.append(
            AblationRow(
                label=_arm_label(s.group, keys),
                components=components,
                estimate=s.estimates[report.metric],
                seeds=s.seeds,
                is_baseline=s.group is report.baseline,
                comparison=comparisons.get(s.group.config_hash),
                published=published,
            )
        )
    return AblationStudy(report.sweep.name, report.metric, report.confidence, report.baseline_name, rows)
