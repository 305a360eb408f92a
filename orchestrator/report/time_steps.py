"""Accuracy and energy against the number of time steps inference runs (``spikesweep eval --time-steps``).

One row per T' (from :func:`engine.training.evaluation.evaluate_time_steps`): a Markdown table, the
rows as Parquet, and a figure with top-1 and energy per inference against T' on two axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.report.tables import Table, axis_label

__all__ = ["time_steps_table", "write_time_steps"]


def time_steps_table(rows: list[dict[str, Any]]) -> Table:
    headers = ["T'", "test top-1 (%)", "top-5 (%)", "firing rate", "ACs", "MACs", "energy (µJ)"]
    body = [
        [
            str(r["time_steps"]),
            f"{r['test_top1']:.2f}",
            f"{r['test_top5']:.2f}",
            f"{r['test_firing_rate']:.4f}",
            f"{r['test_acs']:,.0f}",
            f"{r['test_macs']:,.0f}",
            f"{r['energy_uj']:.4g}",
        ]
        for r in rows
    ]
    return Table(headers, body)


def write_time_steps(rows: list[dict[str, Any]], out_dir: Path, title: str) -> dict[str, Path]:
    """``time_steps.md``, ``time_steps.parquet`` and ``time_steps.png`` in ``out_dir``."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"time_steps.{name}" for name in ("md", "parquet", "png")}
    n = rows[0]["test_samples"]
    paths["md"].write_text(
        f"# {title}: accuracy and energy vs time steps\n\n"
        f"Inference stopped after the first T' of each recording's frames; {n:,} test recordings.\n\n"
        + time_steps_table(rows).to_markdown()
        + "\n"
    )
    pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
    steps = [r["time_steps"] for r in rows]
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    ax.plot(steps, [r["test_top1"] for r in rows], "o-", color="C0")
    ax.set_xlabel("time steps run at inference (T')")
    ax.set_ylabel(axis_label("test_top1", [n]), color="C0")
    ax.set_ylim(-3, 103)
    ax.set_xticks(steps)
    ax.grid(alpha=0.3)
    energy = ax.twinx()
    energy.plot(steps, [r["energy_uj"] for r in rows], "s--", color="C3")
    energy.set_ylabel("energy per inference (µJ)", color="C3")
    energy.set_ylim(bottom=0)
    ax.set_title(title)
    FigureCanvasAgg(fig)
    fig.savefig(paths["png"], dpi=110, bbox_inches="tight")
    return paths
