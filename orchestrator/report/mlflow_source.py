"""Read a sweep back from its MLflow records (the runs ``spikesweep sweep`` logged).

For when only the tracking store is reachable (an ``mlflow server`` shared by a lab, the sweep directory
on another cluster). Params come back as strings and are retyped through :class:`RunConfig`; summary
numbers come from the last logged value of the per-epoch metrics; curves are fetched lazily, one
``get_metric_history`` call per run and key, only when a plot needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.config import RunConfig, all_keys, unflatten
from engine.errors import SpikesweepError
from engine.training.records import ALPHA_PREFIX, BEST_TEST_TOP1
from orchestrator.records import TrialStatus
from orchestrator.report.load import (
    CURVE_KEYS,
    TEST_SAMPLES,
    Curves,
    ReportInputError,
    SweepData,
    Trial,
    TrialKey,
)

__all__ = ["load_mlflow", "search_all_runs"]

_TRIAL_ROLE = "trial"
_SWEEP_ROLE = "sweep"


def load_mlflow(tracking_uri: str, experiment: str) -> SweepData:
    """Read the trial runs of an MLflow experiment written by ``spikesweep sweep``.

    ``experiment`` is the experiment's name (the sweep name) or its id. Trials are the runs tagged
    ``spikesweep.role=trial``; their config comes back from the params (strings in MLflow, retyped
    through :class:`RunConfig`), their status from the ``spikesweep.run_status`` tag (the engine run's
    own; ``spikesweep.status`` is the whole trial's, which differs for a seed-aware trial), their summary
    numbers from the last logged value of the per-epoch metrics.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None and experiment.isdigit():
        try:
            exp = client.get_experiment(experiment)
        except Exception:  # noqa: BLE001 — MLflow raises its own error type for a missing id
            exp = None
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportInputError(
            f"MLflow at {tracking_uri} has no experiment {experiment!r}; experiments there: "
            f"{', '.join(names) or 'none'}"
        )

    runs = search_all_runs(client, exp.experiment_id, f"tags.`spikesweep.role` = '{_TRIAL_ROLE}'")
    parents = search_all_runs(client, exp.experiment_id, f"tags.`spikesweep.role` = '{_SWEEP_ROLE}'")
    parent = max(parents, key=lambda r: r.info.start_time or 0) if parents else None
    if parent is not None:
        runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in (None, parent.info.run_id)]

    valid_keys = set(all_keys())
    trials = []
    run_of_trial: dict[TrialKey, str] = {}
    metric_keys: set[str] = set()
    for run in runs:
        tags = run.data.tags
        metrics = run.data.metrics
        metric_keys.update(metrics)
        trial_id = tags.get("spikesweep.trial_id") or run.info.run_id
        config = _config_from_params({k: v for k, v in run.data.params.items() if k in valid_keys})
        seed = tags.get("spikesweep.seed", config.get("seed"))
        run_of_trial[(trial_id, int(seed))] = run.info.run_id
        trials.append(
            Trial(
                trial_id=trial_id,
                config_hash=tags.get("spikesweep.config_hash")
                or RunConfig.from_dict(unflatten(config)).config_hash(),
                seed=int(seed),
                status=_mlflow_status(
                    tags.get("spikesweep.run_status") or tags.get("spikesweep.status"), run.info.status
                ),
                metrics=_summary_metrics(metrics),
                config=config,
                mlflow_run_id=run.info.run_id,
                arm=tags.get("spikesweep.arm") or run.data.params.get("arm") or None,
            )
        )

    def fetch(trial: TrialKey, key: str):
        run_id = run_of_trial.get(trial)
        if run_id is None:
            return None
        history = client.get_metric_history(run_id, key)
        if not history:
            return None
        last: dict[int, float] = {}
        for m in sorted(history, key=lambda m: (m.step, m.timestamp)):
            last[int(m.step)] = float(m.value)
        steps = np.array(sorted(last), dtype=np.int64)
        return steps, np.array([last[s] for s in steps], dtype=np.float64)

    curve_keys = [k for k in metric_keys if k in CURVE_KEYS or k.startswith(ALPHA_PREFIX)]
    varied = []
    if parent is not None:
        raw = parent.data.tags.get("spikesweep.varied") or parent.data.params.get("varied")
        if raw:
            varied = [k.strip() for k in raw.strip("[]").replace("'", "").split(",") if k.strip()]
    return SweepData(
        name=exp.name,
        source=f"{tracking_uri} (experiment {exp.name!r})",
        trials=trials,
        experiment=exp.name,
        varied=varied,
        curves=Curves.lazy(fetch, curve_keys),
        tracking_uri=tracking_uri,
        experiment_id=exp.experiment_id,
        parent_run_id=parent.info.run_id if parent is not None else None,
        space=_parent_space(client, parent) if parent is not None else None,
    )


def _parent_space(client, parent) -> dict | None:
    """The space file the sweep attached to its parent run (``space/``), read with the strict reader, so a
    report from MLflow uses the same ``report:`` section (baseline, kind) as one from the sweep directory."""
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from engine.errors import ConfigError  # noqa: PLC0415
    from engine.yamlio import read_yaml_file  # noqa: PLC0415

    try:
        files = [a.path for a in client.list_artifacts(parent.info.run_id, "space") if not a.is_dir]
        if not files:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(parent.info.run_id, files[0], tmp)
            space = read_yaml_file(Path(local), "sweep space")
    except (ConfigError, OSError):
        return None
    except Exception:  # noqa: BLE001 — an unreachable artifact store: report without the space
        return None
    return space if isinstance(space, dict) else None


def search_all_runs(client, experiment_id: str, filter_string: str) -> list:
    """Every run of the experiment matching ``filter_string``, fetched page by page (1000 runs a page)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _config_from_params(params: dict[str, str]) -> dict[str, Any]:
    """MLflow params are strings; parse each as a scalar and let :class:`RunConfig` restore its type.

    A key whose value does not fit the current config schema (a sweep from an older version) keeps its
    parsed value rather than failing the whole report.
    """
    flat = {key: _parse_param(raw) for key, raw in params.items()}
    base = RunConfig()
    try:
        typed = base.with_overrides(flat, source="MLflow params").flat()
        return {k: typed[k] for k in flat}
    except SpikesweepError:
        pass
    out = {}
    for key, value in flat.items():
        try:
            out[key] = base.with_overrides({key: value}, source="MLflow params").flat()[key]
        except SpikesweepError:
            out[key] = value
    return out


def _parse_param(raw: str) -> Any:
    """``str(value)`` back to the value: YAML scalars, Python's ``None``/``True``, and ``1e-05``
    (which YAML 1.1 reads as a string because it lacks a dot)."""
    import yaml

    if raw in ("None", ""):
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return value


def _summary_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Trial summary numbers from MLflow's last-logged values (``epoch`` counts from 0)."""
    out: dict[str, float] = {}
    if BEST_TEST_TOP1 in metrics:
        out[BEST_TEST_TOP1] = float(metrics[BEST_TEST_TOP1])
    last = metrics.get("last_test_top1", metrics.get("test_top1"))
    if last is not None:
        out["last_test_top1"] = float(last)
    if "best_epoch" in metrics:
        out["best_epoch"] = float(metrics["best_epoch"])
    if "epochs_run" in metrics:
        out["epochs_run"] = float(metrics["epochs_run"])
    elif "epoch" in metrics:
        out["epochs_run"] = float(metrics["epoch"]) + 1
    if "wall_time_s" in metrics:
        out["wall_time_s"] = float(metrics["wall_time_s"])
    if TEST_SAMPLES in metrics:  # the last value, without fetching a history per run
        out[TEST_SAMPLES] = float(metrics[TEST_SAMPLES])
    return out


def _mlflow_status(tag: str | None, run_status: str) -> str:
    if tag:
        return tag.upper()
    return {
        "FINISHED": TrialStatus.COMPLETE,
        "FAILED": TrialStatus.FAILED,
        "KILLED": TrialStatus.FAILED,
    }.get(run_status, TrialStatus.RUNNING)
