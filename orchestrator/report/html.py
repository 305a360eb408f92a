"""``report.html``: the whole report as one self-contained file — open it from a shared drive or mail it.

No network and no JavaScript: the figures are embedded as ``data:`` URIs, the style is inline, and the
per-configuration details fold with HTML's own ``<details>``. It holds what ``report.md`` holds (the
paper-style study when there is one, the ranked table, the paired comparisons, every figure, the notes)
plus what a reader away from the sweep directory needs: each configuration's full config and its seeds'
numbers and learning curves, and the provenance — the command that made the report, the code's git
commit, the sweep's own commit and the space file it ran.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.report.aggregate import ConfigSummary, SweepReport, format_value
from orchestrator.report.tables import Table, axis_label, comparison_table, metric_title, summary_table

__all__ = ["render_html", "table_html"]

MAX_DETAILED_CONFIGS = 12
"""Per-configuration sections (with their seeds' curves) for at most this many, the best-ranked."""

_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #1b1b1b; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; }
th { background: #eef1f5; }
td.r, th.r { text-align: right; } td.c, th.c { text-align: center; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
.meta li { margin: .1em 0; } .note { color: #8a4b00; }
pre { background: #f5f5f5; padding: .6em; overflow-x: auto; font-size: 12px; }
details { margin: .4em 0; } summary { cursor: pointer; font-weight: 600; }
"""


def table_html(table: Table) -> str:
    """A :class:`~orchestrator.report.tables.Table` as an HTML table (same cells as the text and TeX)."""
    align = table.align or "l" + "r" * (len(table.headers) - 1)
    cls = {"r": ' class="r"', "c": ' class="c"'}
    head = "".join(
        f"<th{cls.get(a, '')}>{html.escape(h)}</th>" for h, a in zip(table.headers, align, strict=False)
    )
    rows = [
        "<tr>"
        + "".join(f"<td{cls.get(a, '')}>{html.escape(c)}</td>" for c, a in zip(row, align, strict=False))
        + "</tr>"
        for row in table.rows
    ]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _seed_curves_png(report: SweepReport, summary: ConfigSummary) -> bytes | None:
    """One line per seed of the configuration's event test top-1 by epoch, as PNG bytes."""
    import io  # noqa: PLC0415

    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    series = []
    for trial in summary.group.completed():
        got = report.sweep.curves.get(trial.key, "test_top1")
        if got is not None and got[0].size:
            series.append((trial.seed, got))
    if not series:
        return None
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    for seed, (epochs, values) in series:
        ax.plot(np.asarray(epochs) + 1, values, label=f"seed {seed}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(axis_label("test_top1", report.sweep.test_set_sizes()))
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=3)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def _config_details(report: SweepReport, summary: ConfigSummary) -> str:
    group = summary.group
    parts = [f"<details><summary>#{summary.rank or '—'} {html.escape(group.label)}</summary>"]
    seeds = Table(
        ["seed", "status", *[metric_title(m) for m in report.metrics]],
        [
            [str(t.seed), t.status, *[format_value(t.metrics.get(m)) for m in report.metrics]]
            for t in sorted(group.trials, key=lambda t: t.seed)
        ],
        "rl" + "r" * len(report.metrics),
    )
    parts.append(table_html(seeds))
    png = _seed_curves_png(report, summary)
    if png is not None:
        data = base64.b64encode(png).decode()
        parts.append(
            f'<img alt="seed curves of {html.escape(group.label)}" src="data:image/png;base64,{data}">'
        )
    config = Table(["key", "value"], [[k, format_value(v)] for k, v in sorted(group.config.items())], "ll")
    parts.append(f"<p>configuration <code>{group.config_hash}</code>:</p>{table_html(config)}</details>")
    return "".join(parts)


def _provenance(report: SweepReport) -> str:
    from orchestrator.sweepdir import git_commit, spikesweep_version  # noqa: PLC0415

    sweep = report.sweep
    command = shlex.join(["spikesweep", *sys.argv[1:]]) if sys.argv and "spikesweep" in sys.argv[0] else ""
    items = [
        f"report written by spikesweep {html.escape(spikesweep_version())} at commit "
        f"<code>{html.escape(git_commit())}</code>",
        f"source: <code>{html.escape(sweep.source)}</code>",
    ]
    if command:
        items.append(f"command: <code>{html.escape(command)}</code>")
    if sweep.sweep_dir is not None and (sweep.sweep_dir / "sweep.json").is_file():
        meta = json.loads((sweep.sweep_dir / "sweep.json").read_text())
        items.append(
            f"sweep {html.escape(str(meta.get('sweep_id')))} started at commit "
            f"<code>{html.escape(str(meta.get('git_commit')))}</code> (spikesweep "
            f"{html.escape(str(meta.get('spikesweep_version')))})"
        )
    text = "<h2>Provenance</h2><ul class='meta'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    if sweep.space:
        import yaml  # noqa: PLC0415

        dumped = yaml.safe_dump(sweep.space, sort_keys=False, allow_unicode=True)
        text += f"<details><summary>space file</summary><pre>{html.escape(dumped)}</pre></details>"
    return text


def render_html(
    report: SweepReport,
    plots: dict[str, Path],
    notes: list[str],
    paper=None,
    paper_plots: dict[str, Path] | None = None,
    landscapes: list[Path] = (),
    sections: list[tuple[Any, Path | None]] = (),
) -> str:
    """The whole self-contained document (see the module docstring)."""
    sweep = report.sweep
    counts = sweep.status_counts()
    ci = f"{report.confidence:.0%}"
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Sweep report: {html.escape(sweep.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Sweep report: {html.escape(sweep.name)}</h1><ul class='meta'>",
        f"<li>generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</li>",
        f"<li>{len(sweep.trials)} runs ("
        + ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
        + f") in {len(report.summaries)} configurations; ranked by {html.escape(metric_title(report.metric))}"
        f" ({'higher' if report.mode == 'max' else 'lower'} is better)</li>",
    ]
    if report.baseline is not None:
        out.append(f"<li>baseline: {html.escape(report.baseline.label)}</li>")
    out += [f"<li class='note'>note: {html.escape(n)}</li>" for n in report.notes] + ["</ul>"]

    if paper is not None:
        title = "Data-ratio study" if paper.kind == "data_ratio" else "Ablation"
        out.append(f"<h2>{title}</h2>{table_html(paper.table())}")
        for name, path in (paper_plots or {}).items():
            out.append(_image(path, name))
        out += [f"<p class='note'>note: {html.escape(n)}</p>" for n in getattr(paper, "notes", [])]

    for section, figure in sections:  # the Pareto front, accuracy vs time steps (write_report)
        out.append(f"<h2>{html.escape(section.heading)}</h2><p>{html.escape(section.intro())}</p>")
        out.append(table_html(section.table()))
        if figure is not None:
            out.append(_image(figure, section.heading))

    out.append(f"<h2>Configurations, ranked by {html.escape(metric_title(report.metric))}</h2>")
    out.append(f"<p>Mean ± half-width of the {ci} Student-t interval over completed seeds.</p>")
    out.append(table_html(summary_table(report)))
    if report.baseline is not None:
        out.append(f"<h2>Paired comparisons with the baseline ({html.escape(report.baseline_name)})</h2>")
        for metric in report.metrics:
            out.append(
                f"<h3>{html.escape(metric_title(metric))}</h3>{table_html(comparison_table(report, metric))}"
            )

    if plots or notes:
        out.append("<h2>Figures</h2>")
        out += [f"<h3>{html.escape(name)}</h3>{_image(path, name)}" for name, path in plots.items()]
        out += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    if landscapes:
        out.append("<h2>Loss landscapes</h2>")
        out += [_image(path, f"{path.parent.parent.name} {path.stem}") for path in landscapes]

    out.append("<h2>Configurations in detail</h2>")
    detailed = [s for s in report.summaries if s.group.completed()][:MAX_DETAILED_CONFIGS]
    out += [_config_details(report, s) for s in detailed]
    if len(detailed) < len(report.summaries):
        out.append(f"<p>… {len(report.summaries) - len(detailed)} more configurations in summary.parquet</p>")
    out.append(_provenance(report))
    out.append("</body></html>")
    return "\n".join(out)
