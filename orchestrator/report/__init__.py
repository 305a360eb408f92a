"""Multi-seed reports of a sweep: per-configuration confidence intervals, paired tests against a
baseline, tables, plots, and seed aggregates written back into MLflow.

Pipeline: :func:`load.load_sweep_dir` or :func:`mlflow_source.load_mlflow` →
:func:`aggregate.build_report` → :func:`write.write_report` (+ :func:`mlflow_aggregates.log_aggregates`).
``spikesweep report`` and ``spikesweep compare`` are thin commands over these.
"""

from orchestrator.report.aggregate import SweepReport, build_report
from orchestrator.report.load import ReportInputError, SweepData, load_sweep_dir
from orchestrator.report.mlflow_source import load_mlflow

__all__ = ["ReportInputError", "SweepData", "SweepReport", "build_report", "load_mlflow", "load_sweep_dir"]
