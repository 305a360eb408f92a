"""Accuracy and energy against the number of time steps inference runs (``spikesweep eval --time-steps``).

One row per T' (from :func:`engine.training.evaluation.evaluate_time_steps`): a Markdown table, the
rows as Parquet, and a figure with top-1 and energy per inference against T' on two axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.report.stats import Estimate, describe
from orchestrator.report.tables import Table, axis_label, format_mean_ci, section_markdown

__all__ = ["SweepTimeSteps", "best_config_time_steps", "time_steps_table", "write_time_steps"]


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


# --------------------------------------------------------------------------------------------------
# a sweep's best configuration, over its seeds (``spikesweep report SWEEP --time-steps``)

_KEYS = ("test_top1", "energy_uj", "test_firing_rate")
_DIGITS = {"test_top1": 2, "energy_uj": 4, "test_firing_rate": 4}


@dataclass
class SweepTimeSteps:
    """Each seed's rows of the best configuration's best-epoch checkpoint, and their summary per T'."""

    label: str
    config_hash: str
    T: int
    confidence: float
    per_seed: dict[int, list[dict[str, Any]]]

    heading = "Accuracy and energy vs time steps (best configuration)"

    def summary(self) -> list[tuple[int, dict[str, Estimate]]]:
        """Per T': the estimate over seeds of accuracy, energy and firing rate."""
        steps = [r["time_steps"] for r in next(iter(self.per_seed.values()))]
        return [
            (
                t,
                {
                    key: describe([rows[i][key] for rows in self.per_seed.values()], self.confidence)
                    for key in _KEYS
                },
            )
            for i, t in enumerate(steps)
        ]

    def table(self) -> Table:
        ci = f"{self.confidence:.0%} CI"
        headers = ["T'", f"test top-1 (%, mean [{ci}])", f"energy (µJ, mean [{ci}])", "firing rate", "n"]
        body = [
            [str(t), *(format_mean_ci(est[key], _DIGITS[key]) for key in _KEYS), str(len(self.per_seed))]
            for t, est in self.summary()
        ]
        return Table(headers, body)

    def intro(self) -> str:
        return (
            f"{self.label} (T = {self.T}): each seed's best-epoch checkpoint with inference stopped "
            f"after the first T' of each recording's frames; seeds {sorted(self.per_seed)}."
        )

    def markdown(self, figure: str | None) -> str:
        return section_markdown(self.heading, self.intro(), self.table(), figure, "accuracy and energy vs T'")

    def write(self, out_dir: Path, plots: bool = True) -> dict[str, Path]:
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415

        paths = {"md": out_dir / "time_steps.md", "parquet": out_dir / "time_steps.parquet"}
        rows = [{"seed": seed, **r} for seed, seed_rows in self.per_seed.items() for r in seed_rows]
        pq.write_table(pa.Table.from_pylist(rows), paths["parquet"])
        if plots:
            paths["png"] = self._plot(out_dir / "time_steps.png")
        paths["md"].write_text(self.markdown(paths["png"].name if plots else None))
        return paths

    def _plot(self, path: Path) -> Path:
        summary = self.summary()
        steps = [t for t, _ in summary]
        n = next(iter(self.per_seed.values()))[0]["test_samples"]
        fig = Figure(figsize=(6.5, 4))
        ax = fig.add_subplot()
        for key, axis, style, color in (
            ("test_top1", ax, "o-", "C0"),
            ("energy_uj", ax.twinx(), "s--", "C3"),
        ):
            est = [e[key] for _, e in summary]
            err = None
            if len(self.per_seed) > 1:
                err = [[e.mean - e.ci_low for e in est], [e.ci_high - e.mean for e in est]]
            axis.errorbar(steps, [e.mean for e in est], yerr=err, fmt=style, color=color, capsize=3)
            if key == "energy_uj":
                axis.set_ylabel("energy per inference (µJ)", color=color)
                axis.set_ylim(bottom=0)
        ax.set_ylabel(axis_label("test_top1", [n]), color="C0")
        ax.set_ylim(-3, 103)
        ax.set_xlabel("time steps run at inference (T')")
        ax.set_xticks(steps)
        ax.grid(alpha=0.3)
        ax.set_title(f"{self.label}: mean over {len(self.per_seed)} seed(s), {self.confidence:.0%} CI")
        FigureCanvasAgg(fig)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return path


def best_config_time_steps(report: Any, steps: list[int]) -> SweepTimeSteps:
    """Evaluate the report's best configuration (rank 1) at each T' of ``steps``, seed by seed, from the
    best-epoch checkpoints the sweep exported (``runs/<plan key>/seed_<s>/best``)."""
    from engine.training.evaluation import evaluate_time_steps  # noqa: PLC0415 — torch only when asked
    from orchestrator.report.load import ReportInputError  # noqa: PLC0415
    from orchestrator.sweepdir import BEST_EXPORT, SweepDir  # noqa: PLC0415

    sweep = report.sweep
    if sweep.sweep_dir is None:
        raise ReportInputError("--time-steps needs the sweep directory (its checkpoints), not MLflow alone")
    best = next((s for s in report.summaries if s.rank == 1), None)
    if best is None:
        raise ReportInputError("--time-steps: no configuration has a complete run to evaluate")
    layout = SweepDir(Path(sweep.sweep_dir).resolve())
    per_seed: dict[int, list[dict[str, Any]]] = {}
    T = 0
    for trial in sorted(best.group.completed(), key=lambda t: t.seed):
        checkpoint = layout.run_export(trial.plan_key or "", trial.seed) / BEST_EXPORT
        if not trial.plan_key or not checkpoint.is_dir():
            raise ReportInputError(
                f"--time-steps: no exported best checkpoint for seed {trial.seed} of {best.group.label} "
                f"(looked for {checkpoint})"
            )
        evaluable, rows = evaluate_time_steps(checkpoint, steps)
        T = evaluable.config.T
        per_seed[trial.seed] = rows
    return SweepTimeSteps(best.group.label, best.group.config_hash, T, report.confidence, per_seed)
