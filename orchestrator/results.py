"""The driver's own record of a sweep: an append-only journal, and the Parquet tables derived from it.

Why a journal: MLflow writes are batched and Parquet files are rewritten only as trials finish, so a
driver killed at the wrong moment would lose the last epochs of the running trials — and a trial
resumed from a later checkpoint never reports them again. Every Tune result is therefore appended to
``journal.jsonl`` (one JSON line, flushed) the moment it arrives; on a restart the journal is replayed,
MLflow is brought up to date from it, and ``trials.parquet`` / ``epochs.parquet`` are rebuilt from it
plus the Optuna study's trial states (orchestration.md: export curves from the orchestrator's own
records rather than pulling them back from MLflow).

Tables (explicit pyarrow schemas, written atomically):

* ``trials.parquet`` — one row per engine run (a trial on one seed; a ``wilcoxon`` trial has one row per
  seed it started), see :func:`trials_schema`.
* ``epochs.parquet`` — one row per run-epoch, see :func:`epochs_schema`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray.tune import Callback

from engine.config import RunConfig
from engine.training.records import (
    BEST_EPOCH_ENERGY,
    BEST_TEST_TOP1,
    INT_KEYS,
    LAYER_RATE_PREFIX,
    REQUIRED_KEYS,
    alpha_keys,
    metric_keys,
    write_table_atomic,
)
from orchestrator.optuna_bridge import StudyBridge, status_from_optuna
from orchestrator.plan import PlannedTrial, config_for
from orchestrator.records import (
    HOSTNAME_KEY,
    SEED_DONE_KEY,
    SEED_INDEX_KEY,
    SEED_KEY,
    WALL_TIME_KEY,
    TrialStatus,
)
from orchestrator.space import ARM_KEY
from orchestrator.sweepdir import SweepDir, SweepMeta

__all__ = [
    "ResultsCallback",
    "RunRecord",
    "SweepRecorder",
    "config_schema",
    "epochs_schema",
    "trials_schema",
    "write_tables",
]


# --------------------------------------------------------------------------------------------------
# the journal


@dataclass
class RunRecord:
    """Everything reported for one engine run (a plan key on one seed)."""

    plan_key: str
    seed: int
    seed_index: int
    trial_id: str
    stage: str
    config_hash: str
    epochs: dict[int, dict[str, float]] = field(default_factory=dict)
    layers: dict[int, dict[str, float]] = field(default_factory=dict)
    """Per epoch: each neuron layer's firing rate on the event test split (``layers.parquet``)."""
    hostname: str = ""
    wall_time_s: float = math.nan
    seed_done: bool = False

    @property
    def key(self) -> str:
        return run_key(self.plan_key, self.seed)

    def last(self) -> dict[str, float] | None:
        return self.epochs[max(self.epochs)] if self.epochs else None

    def run_status(self, trial_status: str) -> str:
        """The run's own status: COMPLETE once its seed finished (in a pruned trial too), else its trial's."""
        return TrialStatus.COMPLETE if self.seed_done else trial_status


def run_key(plan_key: str, seed: int) -> str:
    return f"{plan_key}:{seed}"


class SweepRecorder:
    """The in-memory view of ``journal.jsonl``, appended to by the driver as results arrive."""

    def __init__(self, path: Path, metric_names: Iterable[str]) -> None:
        self.path = path
        self.metric_names = list(metric_names)
        self.runs: dict[str, RunRecord] = {}
        self.mlflow_run_ids: dict[str, str] = {}
        """run key → MLflow run id (filled by the MLflow logger, read by the Parquet writer)."""
        self._handle: Any = None
        if path.is_file():
            self._replay()

    def _replay(self) -> None:
        with self.path.open() as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed driver
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> RunRecord:
        key = run_key(event["plan_key"], event["seed"])
        record = self.runs.get(key)
        if record is None:
            record = self.runs[key] = RunRecord(
                plan_key=event["plan_key"],
                seed=int(event["seed"]),
                seed_index=int(event["seed_index"]),
                trial_id=event["trial_id"],
                stage=event["stage"],
                config_hash=event["config_hash"],
            )
        record.trial_id = event["trial_id"]
        record.epochs[int(event["epoch"])] = event["metrics"]
        if event.get("layers"):
            record.layers[int(event["epoch"])] = event["layers"]
        record.hostname = event.get("hostname", record.hostname)
        record.wall_time_s = float(event.get("wall_time_s", math.nan))
        record.seed_done = record.seed_done or bool(event.get("seed_done"))
        return record

    def add(self, trial_id: str, planned: PlannedTrial, result: dict[str, Any]) -> RunRecord | None:
        """Record one Tune result of the trainable (ignored unless it is an epoch report)."""
        if "epoch" not in result or SEED_KEY not in result or "train_loss" not in result:
            return None
        metrics = {k: _float(result[k]) for k in self.metric_names if k in result}
        layers = {
            k[len(LAYER_RATE_PREFIX) :]: _float(v)
            for k, v in result.items()
            if k.startswith(LAYER_RATE_PREFIX)
        }
        event = {
            "plan_key": planned.plan_key,
            "seed": int(result[SEED_KEY]),
            "seed_index": int(result.get(SEED_INDEX_KEY, 0)),
            "trial_id": trial_id,
            "stage": planned.stage,
            "config_hash": planned.config_hash,
            "epoch": int(result["epoch"]),
            "metrics": metrics,
            "layers": layers,
            "hostname": str(result.get(HOSTNAME_KEY, "")),
            "wall_time_s": _float(result.get(WALL_TIME_KEY, math.nan)),
            "seed_done": bool(result.get(SEED_DONE_KEY, False)),
        }
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a")
        self._handle.write(json.dumps(event, allow_nan=True) + "\n")
        self._handle.flush()
        return self._apply(event)

    def runs_of(self, plan_key: str) -> list[RunRecord]:
        return sorted((r for r in self.runs.values() if r.plan_key == plan_key), key=lambda r: r.seed_index)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["runs"] = {}
        state["mlflow_run_ids"] = {}
        return state

    def reload(self) -> None:
        """Forget the in-memory view and replay the journal (after ``Tuner.restore`` unpickled us)."""
        self.close()
        self.runs = {}
        if self.path.is_file():
            self._replay()


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------------------------------
# schemas


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
    metrics = []
    alphas = set(alpha_keys(max_T))
    for key in metric_keys(max_T):
        if key in INT_KEYS:
            metrics.append(pa.field(key, pa.int64(), nullable=key not in REQUIRED_KEYS))
        else:
            # alpha_t exists only for t < the run's T, and is NaN for event-only models: nullable.
            metrics.append(pa.field(key, pa.float64(), nullable=key in alphas))
    return pa.schema([*_RUN_HEAD, *metrics])


# --------------------------------------------------------------------------------------------------
# building the tables


def trial_rows(
    bridge: StudyBridge,
    recorder: SweepRecorder,
    meta: SweepMeta,
    version: str,
    configs: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``trials.parquet``; ``configs`` caches each run's flat config between rewrites."""
    configs = {} if configs is None else configs
    space = bridge.space
    base = space.base_config()
    varied = space.varied_keys()
    rows = []
    for entry in bridge.latest_entries():
        planned = entry.planned
        status = status_from_optuna(entry.state)
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
                    "trial_id": record.trial_id if record else _tune_trial_id(bridge, entry.number),
                    "plan_key": planned.plan_key,
                    "optuna_trial": entry.number,
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
                elif key.startswith("alpha_") and (value is None or math.isnan(value)):
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
    bridge: StudyBridge,
    recorder: SweepRecorder,
    sweep_dir: SweepDir,
    meta: SweepMeta,
    configs: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Rewrite ``trials.parquet``, ``epochs.parquet`` and ``layers.parquet`` atomically from the study and
    the journal."""
    from orchestrator.sweepdir import spikesweep_version  # noqa: PLC0415

    max_T = bridge.space.max_T()
    rows = trial_rows(bridge, recorder, meta, spikesweep_version(), configs)
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


def _tune_trial_id(bridge: StudyBridge, number: int) -> str:
    for tune_id, n in bridge.tune_to_number.items():
        if n == number:
            return tune_id
    return ""


# --------------------------------------------------------------------------------------------------
# the Tune callback


class ResultsCallback(Callback):
    """Journals every result and rewrites the Parquet tables whenever a trial ends (and at the end)."""

    def __init__(self, bridge: StudyBridge, recorder: SweepRecorder, sweep_dir: SweepDir, meta: SweepMeta):
        self.bridge = bridge
        self.recorder = recorder
        self.sweep_dir = sweep_dir
        self.meta = meta
        self._configs: dict[str, dict[str, Any]] = {}

    def setup(self, **info: Any) -> None:
        # After ``Tuner.restore`` this object was unpickled without its records: replay the journal.
        self.recorder.reload()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.recorder.add(trial.trial_id, PlannedTrial.from_config(trial.config), result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.write()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.write()
        self.recorder.close()

    def write(self) -> None:
        write_tables(self.bridge, self.recorder, self.sweep_dir, self.meta, self._configs)
