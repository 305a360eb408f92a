"""Read a finished sweep into one in-memory form, from its Parquet files or from its MLflow records.

Both readers (:func:`load_sweep_dir` here, :func:`orchestrator.report.mlflow_source.load_mlflow`)
produce the same :class:`SweepData` so that everything downstream (statistics, tables, plots, MLflow
aggregates) is written once, and a test can check that the two sources agree.

Why both: the Parquet files are the orchestrator's own exact record and carry the full learning curves;
MLflow is what a user may have when the sweep ran elsewhere (an ``mlflow server`` shared by a lab) and
only the tracking store is reachable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import SpikesweepError
from engine.training.records import ALPHA_PREFIX, BEST_TEST_TOP1
from orchestrator.records import STORED_STATUSES, TrialStatus
from orchestrator.sweepdir import SweepDir

__all__ = [
    "CONFIG_PREFIX",
    "CURVE_KEYS",
    "TEST_SAMPLES",
    "TRIAL_METRICS",
    "Curves",
    "ReportInputError",
    "SweepData",
    "Trial",
    "load_sweep_dir",
    "space_objectives",
]

CONFIG_PREFIX = "config."
TRIAL_METRICS = (BEST_TEST_TOP1, "last_test_top1", "best_epoch", "epochs_run", "wall_time_s")
"""Per-trial numbers every source provides; ``--metric`` chooses among the numeric trial columns."""
TEST_SAMPLES = "test_samples"
"""The per-epoch record of how many test recordings an accuracy was computed on."""
CURVE_KEYS = ("test_top1", TEST_SAMPLES, "train_loss", "sliding_p", "lr")
"""Per-epoch keys the plots draw (``alpha_<t>`` columns are added when present)."""


class ReportInputError(SpikesweepError):
    """The sweep to report on is missing, empty, unfinished or cannot be matched to the request."""


@dataclass
class Trial:
    """One trial: a configuration (hash, flat config) run with one seed, and how it ended."""

    trial_id: str
    config_hash: str
    seed: int
    status: str
    metrics: dict[str, float]
    config: dict[str, Any]
    mlflow_run_id: str | None = None
    arm: str | None = None
    """The ablation arm's name when the space defines arms."""
    plan_key: str | None = None
    """The orchestrator's plan key (``trials.parquet``), which names the run's exported directory."""

    @property
    def key(self) -> tuple[str, int]:
        """``(trial_id, seed)``: a seed-aware (wilcoxon) trial runs several seeds under one trial id."""
        return (self.trial_id, self.seed)


TrialKey = tuple[str, int]


class Curves:
    """Per-epoch series of each trial and seed: ``get(trial.key, metric) -> (epochs, values)`` or ``None``.

    From Parquet every series is in memory; from MLflow a series is fetched on first use (one
    ``get_metric_history`` call per run and key, the only way MLflow returns a curve).
    """

    def __init__(self, series: dict[TrialKey, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None):
        self._series = series or {}
        self._fetch = None
        self._available_keys: set[str] = {k for per in self._series.values() for k in per}

    @classmethod
    def lazy(cls, fetch, available_keys: Iterable[str]) -> Curves:
        curves = cls()
        curves._fetch = fetch
        curves._available_keys = set(available_keys)
        return curves

    def metric_keys(self) -> list[str]:
        return sorted(self._available_keys)

    def get(self, trial: TrialKey, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        per = self._series.setdefault(trial, {})
        if metric not in per and self._fetch is not None and metric in self._available_keys:
            fetched = self._fetch(trial, metric)
            if fetched is not None:
                per[metric] = fetched
        return per.get(metric)


@dataclass
class SweepData:
    """Everything a report needs about one sweep, whichever store it came from."""

    name: str
    source: str
    """Human-readable origin: the sweep directory or ``<tracking uri> / <experiment>``."""
    trials: list[Trial]
    varied: list[str] = field(default_factory=list)
    """Config keys the search space declares as varied (may be empty; labels fall back to differences)."""
    curves: Curves = field(default_factory=Curves)
    sweep_dir: Path | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    """MLflow experiment name (the space's ``mlflow.experiment``, by default the sweep name)."""
    experiment_id: str | None = None
    parent_run_id: str | None = None
    sweep_id: str | None = None
    """The orchestrator's sweep identity (``sweep.json``, MLflow tag ``spikesweep.sweep_id``): it tells
    this sweep's parent run apart from another sweep's logged to the same experiment."""
    space: dict[str, Any] | None = None
    """The space file the sweep ran (``space.yaml`` in the sweep directory), when available."""

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STORED_STATUSES, 0)
        for trial in self.trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        return counts

    def test_set_sizes(self) -> list[int]:
        """The distinct numbers of test recordings the COMPLETE trials were scored on (usually one; none
        for a sweep recorded before the epoch records carried ``test_samples``): every accuracy axis
        states it, since a percentage means little without its denominator."""
        sizes = set()
        for trial in self.trials:
            if trial.status != TrialStatus.COMPLETE:
                continue
            n = trial.metrics.get(TEST_SAMPLES)
            if n is None:
                series = self.curves.get(trial.key, TEST_SAMPLES)
                n = series[1][-1] if series is not None and series[1].size else None
            if n is not None and math.isfinite(n):
                sizes.add(int(n))
        return sorted(sizes)

    def metric_names(self) -> list[str]:
        """Numeric per-trial metrics present in at least one trial."""
        names = {k for t in self.trials for k, v in t.metrics.items() if _is_number(v) and k != TEST_SAMPLES}
        return [k for k in TRIAL_METRICS if k in names] + sorted(names - set(TRIAL_METRICS))


# --------------------------------------------------------------------------------------------------
# Parquet


def load_sweep_dir(path: str | Path) -> SweepData:
    """Read ``trials.parquet`` (and ``epochs.parquet``, ``space.yaml`` when present) of a sweep directory."""
    import pyarrow.parquet as pq

    sweep_dir = Path(path)
    if not sweep_dir.is_dir():
        raise ReportInputError(f"sweep directory {str(sweep_dir)!r} does not exist")
    layout = SweepDir(sweep_dir.resolve())
    trials_file = layout.trials_parquet
    if not trials_file.is_file():
        present = sorted(p.name for p in sweep_dir.iterdir())[:20]
        raise ReportInputError(
            f"{sweep_dir} holds no trials.parquet, so it is not a sweep directory (or no trial has "
            f"finished yet); it contains: {', '.join(present) or 'nothing'}. Sweep directories are "
            "<storage>/<name>/ as written by `spikesweep sweep`."
        )
    table = pq.read_table(trials_file)
    rows = table.to_pylist()
    missing = [c for c in ("trial_id", "config_hash", "seed", "status") if c not in table.column_names]
    if missing:
        raise ReportInputError(f"{trials_file}: missing columns {missing}; it has {table.column_names}")

    space = _read_space(layout.space_path)
    objective_metrics = [metric for metric, _ in space_objectives(space)]
    varied: list[str] = []
    trials = []
    for row in rows:
        config = {k[len(CONFIG_PREFIX) :]: v for k, v in row.items() if k.startswith(CONFIG_PREFIX)}
        metrics = {k: _float(v) for k, v in row.items() if k in TRIAL_METRICS or _extra_metric(k, v)}
        # a Pareto sweep's objectives that are not columns of their own (e.g. a last-epoch energy_uj)
        for metric, value in zip(objective_metrics, row.get("objective_values") or [], strict=False):
            metrics.setdefault(metric, _float(value))
        trials.append(
            Trial(
                trial_id=str(row["trial_id"]),
                config_hash=str(row["config_hash"]),
                seed=int(row["seed"]),
                status=str(row.get("run_status") or row["status"]).upper(),
                metrics=metrics,
                config=config,
                mlflow_run_id=row.get("mlflow_run_id") or None,
                arm=row.get("arm") or None,
                plan_key=row.get("plan_key") or None,
            )
        )
        for key in row.get("varied") or []:
            if key not in varied:
                varied.append(key)

    curves = Curves()
    if layout.epochs_parquet.is_file():
        curves = _curves_from_table(pq.read_table(layout.epochs_parquet))

    tracking_uri, experiment = _mlflow_location(layout, space)
    return SweepData(
        sweep_id=_read_sweep_id(layout.meta_path),
        # The directory is named after the sweep (``--name`` may override the space file's own name), and
        # the MLflow experiment carries the same name.
        name=layout.name,
        source=str(sweep_dir),
        trials=trials,
        varied=varied,
        curves=curves,
        sweep_dir=sweep_dir,
        tracking_uri=tracking_uri,
        experiment=experiment,
        space=space,
    )


def space_objectives(space: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``(metric, mode)`` of each objective of the space a sweep ran (validated when it ran): one
    mapping or, for a Pareto sweep, a list of them. Empty when the space file is not at hand."""
    if not space or "objective" not in space:
        return []
    listed = space["objective"]
    listed = listed if isinstance(listed, list) else [listed]
    out = []
    for item in listed:
        metric = str((item or {}).get("metric", BEST_TEST_TOP1))
        out.append((metric, str((item or {}).get("mode", "min" if metric.endswith("loss") else "max"))))
    return out


def _curves_from_table(table) -> Curves:
    """Group ``epochs.parquet`` rows into ``{(trial_id, seed): {metric: (epochs, values)}}``."""
    columns = table.column_names
    if not {"trial_id", "seed", "epoch"} <= set(columns):
        return Curves()
    rows_of: dict[TrialKey, list[int]] = {}
    trial_ids, seeds = table.column("trial_id").to_pylist(), table.column("seed").to_pylist()
    for i, key in enumerate(zip(trial_ids, seeds, strict=True)):
        rows_of.setdefault((str(key[0]), int(key[1])), []).append(i)
    epochs = np.asarray(table.column("epoch").to_numpy(zero_copy_only=False), dtype=np.float64)
    metrics = [c for c in columns if c in CURVE_KEYS or c.startswith(ALPHA_PREFIX)]
    values = {
        k: np.asarray(table.column(k).to_numpy(zero_copy_only=False), dtype=np.float64) for k in metrics
    }
    series: dict[TrialKey, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for key, rows in rows_of.items():
        rows = np.asarray(rows)
        rows = rows[np.argsort(epochs[rows], kind="stable")]
        per = {}
        for metric, column in values.items():
            y = column[rows]
            keep = ~np.isnan(y)
            if keep.any():
                per[metric] = (epochs[rows][keep].astype(np.int64), y[keep])
        series[key] = per
    return Curves(series)


def _mlflow_location(layout: SweepDir, space: dict[str, Any] | None) -> tuple[str | None, str]:
    """Where the sweep's runs are: the space's ``mlflow`` section, else the driver's default store."""
    section = (space or {}).get("mlflow")
    section = section if isinstance(section, dict) else {}
    experiment = str(section.get("experiment") or layout.name)
    if section.get("enabled") is False:
        return None, experiment
    if section.get("tracking_uri"):
        return str(section["tracking_uri"]), experiment
    return (layout.mlflow_default_uri if layout.mlflow_db.is_file() else None), experiment


def _read_sweep_id(path: Path) -> str | None:
    import json

    try:
        return str(json.loads(path.read_text())["sweep_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_space(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


_BOOKKEEPING_COLUMNS = frozenset(
    {
        "plan_key",
        "optuna_trial",
        "seed_index",
        "run_status",
        "arm",
        "trial_id",
        "config_hash",
        "seed",
        "status",
        "pruned",
        "stage",
        "mlflow_run_id",
        "git_commit",
        "hostname",
        "spikesweep_version",
        "varied",
    }
)


def _extra_metric(column: str, value: Any) -> bool:
    """A numeric trials.parquet column beyond :data:`TRIAL_METRICS` (e.g. one the orchestrator adds)."""
    return (
        column not in _BOOKKEEPING_COLUMNS
        and not column.startswith(CONFIG_PREFIX)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    )


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
