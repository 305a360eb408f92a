"""``spikesweep report``: confidence intervals and paired tests over the seeds of a sweep."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from engine.training.records import BEST_TEST_TOP1
from orchestrator.commands import parse_time_steps

NAME = "report"
HELP = "Summarise a sweep over seeds: CIs per configuration, paired tests vs a baseline, plots, MLflow runs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sweep",
        nargs="?",
        type=Path,
        help="sweep directory (<storage>/<name>/ with trials.parquet); omit to read --experiment from MLflow",
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--baseline",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="config values that pick the baseline configuration, e.g. method.beta=0 (default: the space "
        "file's report.baseline, if any)",
    )
    parser.add_argument(
        "--baseline-name",
        help='what to call the baseline in the ablation table, e.g. "full method" (default: the space '
        "file's report.baseline_name, else baseline)",
    )
    parser.add_argument(
        "--kind",
        choices=("standard", "data_ratio", "ablation"),
        help="the paper figure to draw: data_ratio (accuracy vs event-data fraction per arm, paired Δ per "
        "fraction) or ablation (✓/✗ component table, Δ vs the full method); default: the space's "
        "report.kind, else detected from the space (varies data.traindata_ratio → data_ratio; arms with an "
        "arm baseline → ablation)",
    )
    add_metric_arguments(parser)
    parser.add_argument(
        "--out", type=Path, help="output directory (default: SWEEP/report, or ./report-EXPERIMENT)"
    )
    parser.add_argument(
        "--pareto",
        metavar="M1:max,M2:min",
        help="also the trade-off front of two or more per-trial metrics, e.g. "
        "best_test_top1:max,best_epoch_energy_uj:min (pareto.md/.parquet/.png, and in report.md)",
    )
    parser.add_argument(
        "--time-steps",
        type=parse_time_steps,
        metavar="1,2,4",
        help="also evaluate the best configuration's best-epoch checkpoints (every seed) with inference "
        "stopped after each of these many time steps: accuracy and energy vs T' with CIs "
        "(time_steps.md/.parquet/.png, and in report.md); loads the model and the test split",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="do not write aggregate runs and report artifacts to MLflow"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="let this report overwrite numbers MLflow already holds for the same report (same baseline)",
    )


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mlflow-uri",
        help="MLflow tracking URI (default: for a sweep directory, the store it logged to; for "
        "--experiment, $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument("--experiment", help="read the sweep from this MLflow experiment (the sweep name)")


def add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric", default=BEST_TEST_TOP1, help="metric to rank and compare by (default: best_test_top1)"
    )
    parser.add_argument(
        "--mode", choices=("max", "min"), help="max or min is better (default: by metric name)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of intervals (0.95)")
    parser.add_argument(
        "--partial", action="store_true", help="report on finished trials even if some are still running"
    )


def load_source(sweep: Path | None, experiment: str | None, mlflow_uri: str | None):
    """A sweep directory, or an MLflow experiment; exactly one of the two."""
    from engine.errors import ConfigError
    from orchestrator.report.load import load_sweep_dir
    from orchestrator.report.mlflow_source import load_mlflow

    if sweep is not None and experiment:
        raise ConfigError("give either a sweep directory or --experiment, not both")
    if sweep is not None:
        return load_sweep_dir(sweep)
    if not experiment:
        raise ConfigError(
            "give a sweep directory, or --experiment NAME (with --mlflow-uri) to read from MLflow"
        )
    mlflow_uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not mlflow_uri:
        raise ConfigError(
            "--experiment needs --mlflow-uri (or $MLFLOW_TRACKING_URI), e.g. sqlite:///sweeps/x/mlflow.db"
        )
    return load_mlflow(mlflow_uri, experiment)


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from orchestrator.report.aggregate import build_report
    from orchestrator.report.write import write_report

    if not 0 < args.confidence < 1:
        raise ConfigError(f"--confidence {args.confidence} must be between 0 and 1")
    from engine.config import parse_assignments
    from orchestrator.report.paper import build_ablation, build_data_ratio, detect_kind

    objectives = None
    if args.pareto:
        from orchestrator.report.pareto import parse_objectives

        objectives = parse_objectives(args.pareto)  # a malformed request fails before anything is read
    sweep = load_source(args.sweep, args.experiment, args.mlflow_uri)
    if objectives is None:
        from orchestrator.report.load import space_objectives

        declared = space_objectives(sweep.space)
        if len(declared) > 1:
            objectives = declared  # a Pareto sweep: its front is part of every report
    space_report = _space_report(sweep.space)
    kind = detect_kind(sweep.space, args.kind)
    baseline = args.baseline or _space_baseline(sweep.space)
    report = build_report(
        sweep,
        metric=args.metric,
        # A data-ratio baseline is an arm at every fraction, not one configuration: the study pairs them.
        baseline=None if kind == "data_ratio" else baseline,
        mode=args.mode,
        confidence=args.confidence,
        allow_partial=args.partial,
        baseline_name=str(args.baseline_name or space_report.get("baseline_name") or "baseline"),
    )
    out_dir = args.out or (sweep.sweep_dir / "report" if sweep.sweep_dir else Path(f"report-{sweep.name}"))

    paper = None
    if kind == "data_ratio":
        wanted = parse_assignments(baseline, "--baseline") if isinstance(baseline, list) else baseline
        paper = build_data_ratio(report, wanted)
    elif kind == "ablation":
        paper = build_ablation(report)
    pareto = None
    if objectives is not None:
        from orchestrator.report.pareto import build_pareto

        pareto = build_pareto(report, objectives)  # before anything is written
    time_steps = None
    if args.time_steps is not None:
        from orchestrator.report.time_steps import best_config_time_steps

        time_steps = best_config_time_steps(report, args.time_steps)  # before anything is written

    study = None
    if sweep.sweep_dir is not None and not args.no_plots:
        from orchestrator.report.study import find_study

        study = find_study(sweep.sweep_dir, sweep.space)
    landscapes = (
        sorted(sweep.sweep_dir.glob("runs/*/seed_*/landscape-*d/landscape_*.png")) if sweep.sweep_dir else []
    )
    written = write_report(
        report,
        out_dir,
        plots=not args.no_plots,
        study=study,
        paper=paper,
        landscapes=landscapes,
        sections=[s for s in (pareto, time_steps) if s is not None],
    )
    _print_report(report)
    if pareto is not None:
        print("\nPareto front (✓), seed means and CIs:\n")
        print(pareto.table().to_text())
    if time_steps is not None:
        print(f"\nbest configuration ({time_steps.label}, T = {time_steps.T}) vs time steps run:\n")
        print(time_steps.table().to_text())
    if paper is not None:
        title = "data-ratio study" if kind == "data_ratio" else "ablation (paper layout)"
        print(f"\n{title}:\n")
        print(paper.table().to_text())
        for note in getattr(paper, "notes", []):
            print(f"note: {note}")
    figures = f", {len(written.plots)} figures" if written.plots else ""
    print(f"\nwrote {out_dir}/: report.md, report.html, summary.parquet, comparisons.parquet{figures}")
    if not args.no_mlflow:
        _log_to_mlflow(report, written.files, args.mlflow_uri, args.replace)
    return 0


def _print_report(report) -> None:
    from orchestrator.report.tables import comparison_table, metric_title, summary_table

    sweep = report.sweep
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sweep.status_counts().items() if n)
    print(f"sweep {sweep.name}: {len(sweep.trials)} runs ({counts}), {len(report.summaries)} configurations")
    for note in report.notes:
        print(f"note: {note}")
    print(f"\nranked by {metric_title(report.metric)} ({report.mode}):\n")
    print(summary_table(report, compact=True).to_text())
    if report.baseline is not None:
        print(f"\npaired by seed against the baseline {report.baseline.label}:\n")
        print(comparison_table(report, report.metric).to_text())
    elif len(report.summaries) > 1:
        print("\nno baseline: pass --baseline KEY=VALUE ... to compare the configurations with one of them")


def _log_to_mlflow(report, files: list[Path], mlflow_uri: str | None, replace: bool = False) -> None:
    """Aggregate runs and report artifacts, in the store the sweep was read from (or --mlflow-uri).

    Failing to reach MLflow does not fail the report, whose files are already written: it is a warning.
    """
    from orchestrator.records import ACTIVE_STATUSES
    from orchestrator.report.load import ReportInputError
    from orchestrator.report.mlflow_aggregates import log_aggregates

    sweep = report.sweep
    counts = sweep.status_counts()
    if any(counts[s] for s in ACTIVE_STATUSES):
        # The running sweep's driver is its store's only writer (SQLite does not take two).
        print("MLflow: not updated while the sweep is still running; run report again when it has ended")
        return
    uri = mlflow_uri if (mlflow_uri and sweep.sweep_dir is not None) else sweep.tracking_uri
    if not uri:
        print("MLflow: this sweep has no tracking store (no mlflow.db, no --mlflow-uri); nothing logged")
        return
    if importlib.util.find_spec("mlflow") is None:
        print(
            "MLflow: not installed (the [sweep] extra: pip install 'spikesweep[sweep]'); the report's files "
            "are written, nothing logged (--no-mlflow says this is intended)"
        )
        return
    try:
        logged = log_aggregates(
            report,
            uri,
            files=files,
            experiment_id=sweep.experiment_id,
            parent_run_id=sweep.parent_run_id,
            replace=replace,
        )
    except ReportInputError as exc:
        print(f"MLflow: aggregates not logged: {exc}", file=sys.stderr)
        return
    print(
        f"MLflow: {len(logged.run_ids)} aggregate runs under parent run {logged.parent_run_id} "
        f"({logged.created} new, {logged.updated_metrics} metric values updated); report files in its "
        f"{logged.artifacts[0].rsplit('/', 1)[0] if logged.artifacts else 'report'}/ artifacts"
    )


def _space_report(space: dict | None) -> dict:
    section = (space or {}).get("report")
    return section if isinstance(section, dict) else {}


def _space_baseline(space: dict | None) -> dict | None:
    """``report: {baseline: {KEY: VALUE}}`` in the sweep's space file names its default baseline."""
    baseline = _space_report(space).get("baseline")
    return dict(baseline) if isinstance(baseline, dict) and baseline else None
