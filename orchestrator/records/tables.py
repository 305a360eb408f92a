"""The sweep's Parquet tables, derived from the journal and the study: their schemas and their rows.

Explicit pyarrow schemas, written atomically (a report on a running sweep reads the old file or the new
one, never half of one):

* ``trials.parquet`` — one row per engine run (a trial on one seed; a ``wilcoxon`` trial has one row per
  seed it started), see :func:`trials_schema`.
* ``epochs.parquet`` — one row per run-epoch, see :func:`epochs_schema`.
* ``layers.parquet`` — one row per run, epoch and neuron layer, see :func:`layers_schema`.

What the tables need from the Optuna study comes in as :class:`StudyTrial` values (the adapter in
:mod:`orchestrator.tune.study` builds them), so this module — and every reader of its schemas — imports
no Optuna or Ray.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.config import RunConfig
from engine.training.records import (
    ALPHA_PREFIX,
    BEST_EPOCH_ENERGY,
    BEST_TEST_TOP1,
    INT_KEYS,
    REQUIRED_KEYS,
    epoch_fields,
    metric_keys,
    write_table_atomic,
)
from orchestrator.plan import PlannedTrial, config_for
from orchestrator.records import TrialStatus
from orchestrator.records.journal import RunRecord, SweepRecorder, run_key
from orchestrator.space import ARM_KEY, SweepSpace
from orchestrator.sweepdir import SweepDir, SweepMeta

__all__ = [
    "StudyTrial",
    "config_schema",
    "epoch_rows",
    "epochs_schema",
    "layer_rows",
    "layers_schema",
    "trial_rows",
    "trials_schema",
    "write_tables",
]


@dataclass(frozen=True)
class StudyTrial:
    """What ``trials.parquet`` needs to know of one plan key's newest attempt in the study."""

    number: int
    """The Optuna trial number."""
    planned: PlannedTrial
    status: TrialStatus
    tune_trial_id: str
    """The Tune trial that ran it ("" if none is known)."""


def config_schema() -> list[pa.Field]:
    """``config.<key>`` columns, typed from the RunConfig dataclass annotations."""
    return [pa.field(f"config.{key}", arrow_type) for key, arrow_type in _config_types(RunConfig, "")]


def _config_types(cls: type, prefix: str) -> list[tuple[str, pa.DataType]]:
    out: list[tuple[str, pa.DataType]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out.extend(_config_types(kind, f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", _arrow_type(kind)))
    return out


def _arrow_type(kind: Any) -> pa.DataType:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [k for k in typing.get_args(kind) if k is not type(None)]
        return _arrow_type(inner)
    if origin is list:
        return pa.list_(_arrow_type(typing.get_args(kind)[0]))
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}[kind]


_TRIAL_HEAD: list[pa.Field] = [
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("plan_key", pa.string(), nullable=False),
    pa.field("optuna_trial", pa.int64(), nullable=False),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("seed_index", pa.int64(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("run_status", pa.string(), nullable=False),
    pa.field("pruned", pa.bool_(), nullable=False),
    pa.field("epochs_run", pa.int64(), nullable=False),
    pa.field(BEST_TEST_TOP1, pa.float64()),
    pa.field("best_epoch", pa.int64()),
    pa.field("last_test_top1", pa.float64()),
    pa.field(BEST_EPOCH_ENERGY, pa.float64()),
    pa.field("best_epoch_firing_rate", pa.float64()),
    pa.field("objective", pa.float64()),
    pa.field("objective_values", pa.list_(pa.float64()), nullable=False),
    pa.field("wall_time_s", pa.float64()),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("arm", pa.string()),
    pa.field("mlflow_run_id", pa.string(), nullable=False),
    pa.field("git_commit", pa.string(), nullable=False),
    pa.field("hostname", pa.string(), nullable=False),
    pa.field("spikesweep_version", pa.string(), nullable=False),
]


def trials_schema() -> pa.Schema:
    return pa.schema(
        [*_TRIAL_HEAD, *config_schema(), pa.field("varied", pa.list_(pa.string()), nullable=False)]
    )


_RUN_HEAD: list[pa.Field] = [
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("plan_key", pa.string(), nullable=False),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
]
"""The columns naming the run a row of ``epochs.parquet`` or ``layers.parquet`` belongs to."""


def _run_head(record: RunRecord) -> dict[str, Any]:
    return {
        "trial_id": record.trial_id,
        "plan_key": record.plan_key,
        "config_hash": record.config_hash,
        "seed": record.seed,
        "stage": record.stage,
    }


def epochs_schema(max_T: int) -> pa.Schema:
    """A sweep's ``epochs.parquet``: the run columns, then the engine's epoch record (``alpha_t`` nullable:
    runs of a sweep may differ in T)."""
    return pa.schema([*_RUN_HEAD, *epoch_fields(max_T, alphas_nullable=True)])


# --------------------------------------------------------------------------------------------------
# building the tables


def trial_rows(
    space: SweepSpace,
    trials: Sequence[StudyTrial],
    recorder: SweepRecorder,
    meta: SweepMeta,
    version: str,
    configs: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``trials.parquet``, for the study's ``trials`` in creation order; ``configs`` caches each
    run's flat config between rewrites."""
    configs = {} if configs is None else configs
    base = space.base_config()
    varied = space.varied_keys()
    rows = []
    for trial in trials:
        planned = trial.planned
        status = trial.status
        records = {r.seed: r for r in recorder.runs_of(planned.plan_key)}
        if status == TrialStatus.RUNNING and not records:
            status = TrialStatus.PENDING
        seeds = [s for s in planned.seeds if s in records] or [planned.seeds[0]]
        for seed in seeds:
            record = records.get(seed)
            last = record.last() if record else None
            best = _best(record, last)
            run_status = record.run_status(status) if record is not None else status
            key = run_key(planned.plan_key, seed)
            if key not in configs:
                configs[key] = config_for(space, base, planned.overrides, seed).flat()
            flat = configs[key]
            rows.append(
                {
                    "trial_id": record.trial_id if record else trial.tune_trial_id,
                    "plan_key": planned.plan_key,
                    "optuna_trial": trial.number,
                    "config_hash": planned.config_hash,
                    "seed": seed,
                    "seed_index": planned.seeds.index(seed),
                    "status": status,
                    "run_status": run_status,
                    "pruned": status == TrialStatus.PRUNED,
                    "epochs_run": len(record.epochs) if record else 0,
                    BEST_TEST_TOP1: _opt(last, BEST_TEST_TOP1),
                    "best_epoch": None if last is None else int(last["best_epoch"]),
                    "last_test_top1": _opt(last, "test_top1"),
                    # the cost of the model one keeps (the best epoch's): for accuracy–energy fronts
                    BEST_EPOCH_ENERGY: _opt(best, "energy_uj"),
                    "best_epoch_firing_rate": _opt(best, "test_firing_rate"),
                    "objective": _opt(last, space.metric),
                    # every objective, in the space's order (a Pareto sweep's may not be columns above)
                    "objective_values": [_opt(last, o.metric) for o in space.objectives],
                    "wall_time_s": record.wall_time_s if record else None,
                    "stage": planned.stage,
                    "arm": planned.params.get(ARM_KEY),
                    "mlflow_run_id": recorder.mlflow_run_ids.get(key, ""),
                    "git_commit": meta.git_commit,
                    "hostname": record.hostname if record else "",
                    "spikesweep_version": version,
                    **{f"config.{k}": v for k, v in flat.items()},
                    "varied": varied,
                }
            )
    return rows


def epoch_rows(recorder: SweepRecorder, max_T: int) -> list[dict[str, Any]]:
    keys = metric_keys(max_T)
    rows = []
    for record in sorted(recorder.runs.values(), key=lambda r: (r.plan_key, r.seed_index)):
        for epoch in sorted(record.epochs):
            metrics = record.epochs[epoch]
            row = _run_head(record)
            for key in keys:
                value = metrics.get(key)
                if key in INT_KEYS:
                    # a journal line from an older version may lack a later key: null, never a made-up number
                    fallback = epoch if key in REQUIRED_KEYS else None
                    row[key] = int(value) if value is not None else fallback
                elif key.startswith(ALPHA_PREFIX) and (value is None or math.isnan(value)):
                    row[key] = None
                elif value is None:
                    row[key] = math.nan  # a key added after this journal line was written
                else:
                    row[key] = float(value)
            rows.append(row)
    return rows


def layers_schema() -> pa.Schema:
    return pa.schema(
        [
            *_RUN_HEAD,
            pa.field("epoch", pa.int64(), nullable=False),
            pa.field("layer", pa.string(), nullable=False),
            pa.field("firing_rate", pa.float64()),
        ]
    )


def layer_rows(recorder: SweepRecorder) -> list[dict[str, Any]]:
    """Rows of ``layers.parquet``: one per run, epoch and neuron layer, in the network's layer order."""
    rows = []
    for record in sorted(recorder.runs.values(), key=lambda r: (r.plan_key, r.seed_index)):
        head = _run_head(record)
        for epoch in sorted(record.layers):
            for layer, rate in record.layers[epoch].items():
                rows.append({**head, "epoch": epoch, "layer": layer, "firing_rate": rate})
    return rows


def write_tables(
    space: SweepSpace,
    trials: Sequence[StudyTrial],
    recorder: SweepRecorder,
    sweep_dir: SweepDir,
    meta: SweepMeta,
    configs: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Rewrite ``trials.parquet``, ``epochs.parquet`` and ``layers.parquet`` atomically from the study's
    trials and the journal."""
    from orchestrator.sweepdir import spikesweep_version  # noqa: PLC0415

    max_T = space.max_T()
    rows = trial_rows(space, trials, recorder, meta, spikesweep_version(), configs)
    _write(sweep_dir.trials_parquet, rows, trials_schema())
    _write(sweep_dir.epochs_parquet, epoch_rows(recorder, max_T), epochs_schema(max_T))
    _write(sweep_dir.layers_parquet, layer_rows(recorder), layers_schema())


def _write(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    write_table_atomic(pa.Table.from_pylist(rows, schema=schema), path)


def _best(record: RunRecord | None, last: dict[str, float] | None) -> dict[str, float] | None:
    """The epoch record of the run's best epoch (as the last record names it)."""
    if record is None or last is None:
        return None
    return record.epochs.get(int(last["best_epoch"]))


def _opt(record: dict[str, float] | None, key: str) -> float | None:
    if record is None or key not in record:
        return None
    value = record[key]
    return None if value is None or math.isnan(value) else float(value)
