"""PNG figures of a report: learning curves, ablation chart, α_t and sliding P over training.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through pyplot's
global state, so reports can be built from threads, tests and headless cluster nodes alike.

Curves average the COMPLETE trials of a configuration epoch by epoch; the band is the 95 % t interval
over seeds (absent where only one seed reached that epoch). Each plot shows at most ``max_configs``
configurations, the best-ranked ones, so the legend stays legible.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from engine.training.records import ALPHA_PREFIX
from orchestrator.report.aggregate import ConfigSummary, SweepReport
from orchestrator.report.tables import axis_label, metric_bounds, metric_title

__all__ = ["PlotResult", "mean_band", "plot_ablation", "plot_alpha", "plot_curve", "plot_report"]

MAX_CONFIGS = 8


class PlotResult(dict):
    """``{plot name: Path}`` of the files written, plus ``notes`` on the plots that were skipped."""

    def __init__(self):
        super().__init__()
        self.notes: list[str] = []


def plot_report(report: SweepReport, out_dir: Path, max_configs: int = MAX_CONFIGS) -> PlotResult:
    """Every plot the sweep's data allows; a skipped plot is explained in ``result.notes``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = PlotResult()
    shown = [s for s in report.summaries if s.group.completed()][:max_configs]
    if len(shown) < sum(1 for s in report.summaries if s.group.completed()):
        result.notes.append(f"curve plots show the {len(shown)} best-ranked configurations only")

    curves = {
        "learning_curves": (
            "test_top1",
            axis_label("test_top1", report.sweep.test_set_sizes()),
            "Learning curves: event test top-1",
            (0.0, 100.0),
        ),
        "sliding_p": ("sliding_p", "replacement probability P", "Sliding training: P", (0.0, 1.0)),
    }
    for name, (key, ylabel, title, bounds) in curves.items():
        if key != "test_top1" and not _differs(report, shown, [key]):
            result.notes.append(f"{name}.png not drawn: `{key}` is the same in every configuration")
            continue
        path = plot_curve(report, shown, key, out_dir / f"{name}.png", ylabel, title, bounds)
        _record(result, name, path, f"no per-epoch `{key}` values in this sweep")
    _record(result, "ablation", plot_ablation(report, out_dir / "ablation.png"), "no completed configuration")
    alpha_keys = [k for k in report.sweep.curves.metric_keys() if k.startswith(ALPHA_PREFIX)]
    if alpha_keys and not _differs(report, shown, alpha_keys, over_time=True):
        result.notes.append(
            "alpha.png not drawn: α_t never moved from its initial value in any configuration"
        )
    else:
        _record(
            result,
            "alpha",
            plot_alpha(report, shown, out_dir / "alpha.png"),
            "no per-epoch α_t values (alpha_0 … alpha_{T-1}) in this sweep",
        )
    return result


def _differs(
    report: SweepReport, shown: list[ConfigSummary], keys: list[str], over_time: bool = False
) -> bool:
    """Whether the seed-mean curves of ``keys`` differ between configurations (or, with ``over_time``,
    also within one configuration over the epochs): a figure of identical lines says nothing."""
    curves = []
    for summary in shown:
        for key in keys:
            series = _seed_series(report, summary, key)
            if series:
                curves.append(np.nan_to_num(mean_band(series, report.confidence)[1], nan=-1.0))
    if len(curves) < 2 and not over_time:
        return bool(curves)
    flat = np.concatenate(curves) if curves else np.zeros(0)
    if over_time:
        return flat.size > 0 and not np.allclose(flat, flat[0], rtol=0, atol=1e-9)
    return any(c.shape != curves[0].shape or not np.allclose(c, curves[0], rtol=0, atol=1e-9) for c in curves)


def _record(result: PlotResult, name: str, path: Path | None, why_missing: str) -> None:
    if path is None:
        result.notes.append(f"{name}.png not drawn: {why_missing}")
    else:
        result[name] = path


# --------------------------------------------------------------------------------------------------
# data


def mean_band(
    series: list[tuple[np.ndarray, np.ndarray]], confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Align per-seed ``(epochs, values)`` series on epochs: ``(epochs, mean, low, high)``.

    At each epoch only the seeds that reached it count; with one seed the band is NaN (not drawn).
    """
    epochs = np.unique(np.concatenate([e for e, _ in series]))
    grid = np.full((len(series), epochs.size), np.nan)
    for row, (e, v) in enumerate(series):
        grid[row, np.searchsorted(epochs, e)] = v
    n = np.sum(~np.isnan(grid), axis=0)
    mean = np.nanmean(grid, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.nansum((grid - mean) ** 2, axis=0) / (n - 1))
        half = stats.t.ppf((1 + confidence) / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return epochs, mean, mean - half, mean + half


def _seed_series(
    report: SweepReport, summary: ConfigSummary, key: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    series = []
    for trial in summary.group.completed():
        got = report.sweep.curves.get(trial.key, key)
        if got is not None and got[0].size:
            series.append(got)
    return series


# --------------------------------------------------------------------------------------------------
# figures


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _wrap(label: str, width: int = 60) -> str:
    """Long configuration labels on several lines, broken between ``key=value`` items."""
    items = label.split(", ")
    lines, line = [], ""
    for item in items:
        candidate = f"{line}, {item}" if line else item
        if line and len(candidate) > width:
            lines.append(line + ",")
            line = item
        else:
            line = candidate
    lines.append(line)
    return "\n".join(textwrap.shorten(x, width=width + 20, placeholder="…") for x in lines)


def _legend_below(ax) -> None:
    """Below the axes, so that no label hides a curve however long the labels are."""
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_curve(
    report: SweepReport,
    shown: list[ConfigSummary],
    key: str,
    path: Path,
    ylabel: str,
    title: str,
    bounds: tuple[float, float] | None = None,
) -> Path | None:
    """One line per configuration: mean over seeds of ``key`` by epoch, with its CI band.

    ``bounds`` is the range the metric can take (0–100 % for an accuracy): with few seeds a t interval
    reaches far past it, so the band is drawn clipped to it and the axis kept to it; the numbers in the
    tables are never clipped.
    """
    data = [(s, _seed_series(report, s, key)) for s in shown]
    data = [(s, series) for s, series in data if series]
    if not data:
        return None
    fig = Figure(figsize=(8, 4.8))
    ax = fig.add_subplot()
    for (summary, series), color in zip(data, _colors(len(data)), strict=True):
        epochs, mean, low, high = mean_band(series, report.confidence)
        epochs = epochs + 1  # epochs are counted from 1 where people read them
        ax.plot(epochs, mean, color=color, label=_wrap(f"{summary.group.label} (n={len(series)})", 90))
        if np.isfinite(low).any():
            if bounds is not None:
                low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)
    if bounds is not None:
        margin = 0.03 * (bounds[1] - bounds[0])
        ax.set_ylim(bounds[0] - margin, bounds[1] + margin)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} — mean over seeds, {report.confidence:.0%} CI band")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return _save(fig, path)


def plot_ablation(report: SweepReport, path: Path) -> Path | None:
    """Mean ± CI of the report metric per configuration; with a baseline, a second panel of paired Δ."""
    summaries = [s for s in report.summaries if math.isfinite(s.estimates[report.metric].mean)]
    if not summaries:
        return None
    comparisons = {c.group.config_hash: c for c in report.comparisons_for(report.metric)}
    panels = 2 if report.baseline is not None else 1
    lines = sum(_wrap(s.group.label).count("\n") + 1 for s in summaries)
    height = max(2.8, 1.2 + 0.3 * lines + 0.2 * len(summaries))
    fig = Figure(figsize=(6 * panels + 3, height))
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    y = np.arange(len(summaries))[::-1]
    labels = []
    for yi, s in zip(y, summaries, strict=True):
        est = s.estimates[report.metric]
        is_base = report.baseline is not None and s.group is report.baseline
        low, high = est.ci_low, est.ci_high
        bounds = metric_bounds(report.metric)  # an accuracy's CI drawn within 0–100 %
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        err = None if est.n < 2 else [[est.mean - low], [high - est.mean]]
        axes[0].errorbar(est.mean, yi, xerr=err, fmt="o", color="C3" if is_base else "C0", capsize=3)
        labels.append(_wrap(s.group.label + (" (baseline)" if is_base else "") + f"  n={est.n}"))
    axes[0].set_yticks(y, labels, fontsize="small")
    for ax in axes:
        ax.set_ylim(-0.7, len(summaries) - 0.3)
    sizes = report.sweep.test_set_sizes()
    axes[0].set_xlabel(axis_label(report.metric, sizes, f"mean, {report.confidence:.0%} CI"))
    axes[0].grid(axis="x", alpha=0.3)
    if panels == 2:
        ax = axes[1]
        for yi, s in zip(y, summaries, strict=True):
            c = comparisons.get(s.group.config_hash)
            if c is None or not math.isfinite(c.result.mean_diff):
                continue
            r = c.result
            err = (
                None if not math.isfinite(r.ci_low) else [[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]]
            )
            ax.errorbar(r.mean_diff, yi, xerr=err, fmt="s", color="C1", capsize=3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(y, [""] * len(y))
        ax.set_xlabel(f"paired Δ vs baseline ({report.confidence:.0%} CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{report.sweep.name}: {metric_title(report.metric)} per configuration")
    return _save(fig, path)


def plot_alpha(report: SweepReport, shown: list[ConfigSummary], path: Path) -> Path | None:
    """One panel per configuration with the learned coefficients α_t = σ(c_t), one line per step t."""
    keys = [k for k in report.sweep.curves.metric_keys() if k.startswith(ALPHA_PREFIX)]
    keys.sort(key=lambda k: int(k[len(ALPHA_PREFIX) :]))
    panels = []
    for summary in shown:
        lines = [(k, _seed_series(report, summary, k)) for k in keys]
        lines = [(k, series) for k, series in lines if series]
        if lines:
            panels.append((summary, lines))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.8 * cols, 3.8 * rows))
    for i, (summary, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        colors = _colors(len(lines))
        styles = ("-", "--", ":", "-.")
        for k, ((key, series), color) in enumerate(zip(lines, colors, strict=True)):
            epochs, mean, _, _ = mean_band(series, report.confidence)
            # coinciding lines (α_t often move together) stay distinguishable by their dashes and markers
            ax.plot(
                epochs + 1,
                mean,
                color=color,
                linestyle=styles[k % len(styles)],
                marker="os^vD<>"[k % 7],
                markevery=max(1, len(epochs) // 6),
                markersize=4,
                label=f"t={int(key[6:]) + 1}",
            )
        ax.set_title(_wrap(summary.group.label, 50), fontsize="x-small")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("α_t (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncol=2, title="time step", title_fontsize="x-small")
    fig.suptitle("Learned per-step coefficients α_t over training")
    fig.tight_layout()
    return _save(fig, path)
