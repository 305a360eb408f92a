"""``spikesweep compare``: the same configurations across sweeps (e.g. reproductions on two clusters)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.commands.report import add_metric_arguments

NAME = "compare"
HELP = "Compare the same configurations across sweeps: per-sweep CIs and the difference to the first sweep."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweeps", nargs="*", type=Path, help="sweep directories; the first is the reference")
    parser.add_argument("--mlflow-uri", help="MLflow tracking URI of the --experiment sweeps")
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        help="a sweep read from MLflow (repeatable; after the dirs)",
    )
    add_metric_arguments(parser)
    parser.add_argument(
        "--out", type=Path, help="output directory (default: FIRST_SWEEP/compare, or ./compare-EXPERIMENT)"
    )


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from orchestrator.report.compare import compare_sweeps, comparison_table, write_comparison
    from orchestrator.report.load import load_sweep_dir
    from orchestrator.report.mlflow_source import load_mlflow
    from orchestrator.report.tables import metric_title

    if args.experiment and not args.mlflow_uri:
        raise ConfigError("--experiment needs --mlflow-uri")
    sweeps = [load_sweep_dir(path) for path in args.sweeps]
    sweeps += [load_mlflow(args.mlflow_uri, name) for name in args.experiment]
    if len(sweeps) < 2:
        raise ConfigError(
            f"compare needs at least two sweeps (directories or --experiment), got {len(sweeps)}"
        )
    comp = compare_sweeps(
        sweeps, metric=args.metric, mode=args.mode, confidence=args.confidence, allow_partial=args.partial
    )
    print(f"{metric_title(comp.metric)} across {len(sweeps)} sweeps (reference: {comp.names[0]}):\n")
    print(comparison_table(comp, comp.metric).to_text())
    if args.out is None:  # inside the reference sweep; from MLflow only, beside the current directory
        args.out = Path(args.sweeps[0]) / "compare" if args.sweeps else Path(f"compare-{sweeps[0].name}")
    files = write_comparison(comp, args.out)
    print(f"\nwrote {', '.join(p.name for p in files)} to {args.out}/")
    return 0
