"""Per-epoch records: the metric keys of the trainer contract and their Parquet schema.

One row per epoch. The key order and types are fixed here once, because three readers depend on them:
the orchestrator's ``epochs.parquet`` (one row per trial-epoch), MLflow metrics, and reports. The
schema is explicit (not inferred from the first row) so an epoch whose value happens to be an integer
or a NaN does not change a column's type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.atomic import atomic_path

__all__ = [
    "ACTIVITY_KEYS",
    "ALPHA_PREFIX",
    "EpochKey",
    "BEST_EPOCH_ENERGY",
    "BEST_TEST_TOP1",
    "LAYER_RATE_PREFIX",
    "LAYER_SCHEMA",
    "INT_KEYS",
    "REQUIRED_KEYS",
    "TIMING_KEYS",
    "alpha_keys",
    "epoch_fields",
    "epoch_record",
    "epoch_schema",
    "layer_rows",
    "metric_keys",
    "read_layer_records",
    "read_records",
    "write_layer_records",
    "write_records",
]


@dataclass(frozen=True)
class EpochKey:
    """One column of the per-epoch record."""

    name: str
    kind: type = float
    """``int`` (stored as int64) or ``float`` (float64; NaN where a value does not apply)."""
    required: bool = False
    """Every record has had it from the start. Any other key may be missing from a record written by an
    older version (a run or sweep resumed after an upgrade): it is stored as null (int) or NaN (float)."""
    timing: bool = False
    """It measures the machine, not the run: it differs between two otherwise identical runs."""


ACTIVITY_KEYS = ("test_firing_rate", "test_spikes", "test_acs", "test_macs", "energy_uj")
"""Per-inference activity of the event test evaluation (``engine.activity``): spikes per neuron per
step, spikes, accumulates and multiply-accumulates per sample, and the energy estimate in µJ."""
BEST_TEST_TOP1 = "best_test_top1"
"""The paper's number: the best test top-1 over the epochs so far (every default objective and ranking)."""
BEST_EPOCH_ENERGY = "best_epoch_energy_uj"
"""``energy_uj`` of the best epoch so far (the one ``best_test_top1`` is from): the cost of the model one
keeps, so an accuracy–energy objective pair describes one model, not the best accuracy beside the last
epoch's energy."""

_HEAD: tuple[EpochKey, ...] = (
    EpochKey("epoch", int, required=True),
    EpochKey("train_loss"),
    EpochKey("train_loss_static"),
    EpochKey("train_loss_event"),
    EpochKey("train_loss_domain"),
    EpochKey("train_cka_distance"),
    EpochKey("train_top1"),
    EpochKey("test_loss"),
    EpochKey("test_top1"),
    EpochKey("test_top5"),
    EpochKey("test_samples", int),
    *(EpochKey(key) for key in ACTIVITY_KEYS),
    EpochKey(BEST_TEST_TOP1),
    EpochKey("best_epoch", int, required=True),
    EpochKey(BEST_EPOCH_ENERGY),
    EpochKey("sliding_p"),
    EpochKey("mixup_ratio"),
    EpochKey("mixup_p"),
    EpochKey("mixup_event_fraction"),
    EpochKey("train_loss_mixup_source"),
    EpochKey("train_loss_mixup_ratio"),
    EpochKey("lr"),
)
_TAIL: tuple[EpochKey, ...] = (
    EpochKey("epoch_time_s", timing=True),
    EpochKey("samples_per_s", timing=True),
    EpochKey("peak_mem_mb", timing=True),
)
ALPHA_PREFIX = "alpha_"


def epoch_record(T: int) -> tuple[EpochKey, ...]:
    """The per-epoch record of a run with T steps, in column order (contracts.md, "Trainer"): the
    definition every reader and writer of epoch records derives from."""
    return (*_HEAD, *(EpochKey(key) for key in alpha_keys(T)), *_TAIL)


INT_KEYS: frozenset[str] = frozenset(k.name for k in (*_HEAD, *_TAIL) if k.kind is int)
REQUIRED_KEYS: frozenset[str] = frozenset(k.name for k in (*_HEAD, *_TAIL) if k.required)
TIMING_KEYS: frozenset[str] = frozenset(k.name for k in (*_HEAD, *_TAIL) if k.timing)


def alpha_keys(T: int) -> list[str]:
    """``alpha_0 … alpha_{T-1}``: σ(c_t) of the learnable per-step coefficients after the epoch."""
    return [f"{ALPHA_PREFIX}{t}" for t in range(T)]


def metric_keys(T: int) -> list[str]:
    """Every per-epoch metric key, in record order."""
    return [key.name for key in epoch_record(T)]


def epoch_fields(T: int, *, alphas_nullable: bool = False) -> list[pa.Field]:
    """The record's Parquet columns. Integers are nullable unless required; floats hold NaN rather than
    null, except the ``alpha_t`` of a table whose runs differ in T (a sweep's ``epochs.parquet``:
    ``alpha_t`` exists only for t < the run's T)."""
    fields = []
    for key in epoch_record(T):
        if key.kind is int:
            fields.append(pa.field(key.name, pa.int64(), nullable=not key.required))
        else:
            alpha = key.name.startswith(ALPHA_PREFIX)
            fields.append(pa.field(key.name, pa.float64(), nullable=alphas_nullable and alpha))
    return fields


def epoch_schema(T: int) -> pa.Schema:
    """A run directory's ``epochs.parquet``."""
    return pa.schema(epoch_fields(T))


def write_records(path: str | Path, rows: Sequence[dict[str, Any]], T: int) -> None:
    """Write ``rows`` to ``path`` atomically (temporary file, then rename): readers never see half a file."""
    path = Path(path)
    schema = epoch_schema(T)
    columns = {key: [_cast(row.get(key), key) for row in rows] for key in schema.names}
    write_table_atomic(pa.table(columns, schema=schema), path)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename, so that a reader (a resumed
    run, a report on a running sweep) sees the old file or the new one, never half of one. The
    temporary name carries the process id, so two writers never share it."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a records file, as written."""
    return pq.read_table(path).to_pylist()


def _cast(value: Any, key: str) -> int | float | None:
    if value is None:
        if key in REQUIRED_KEYS:
            raise KeyError(f"an epoch record without {key!r}")
        return None if key in INT_KEYS else math.nan  # a record from before the key existed
    if key in INT_KEYS:
        return int(value)
    return float(value)


# --------------------------------------------------------------------------------------------------
# per-layer activity, epoch by epoch

LAYER_RATE_PREFIX = "firing_rate/"
"""``firing_rate/<layer>``: one layer's firing rate in a sweep's Tune results and its MLflow runs
(MLflow's chart view groups metrics by the prefix)."""
LAYER_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int64(), nullable=False),
        pa.field("layer", pa.string(), nullable=False),
        pa.field("neurons", pa.int64(), nullable=False),
        pa.field("spikes", pa.float64(), nullable=False),
        pa.field("firing_rate", pa.float64(), nullable=False),
    ]
)
"""``neurons`` per time step and sample; ``spikes`` per sample over all steps; ``firing_rate`` spikes per
neuron per step (the per-layer terms of the record's ``test_spikes`` and ``test_firing_rate``)."""


def layer_rows(epoch: int, activity: Any) -> list[dict[str, Any]]:
    """The rows of one epoch from an :class:`engine.activity.Activity`."""
    return [
        {
            "epoch": int(epoch),
            "layer": layer.name,
            "neurons": int(layer.neurons),
            "spikes": float(layer.spikes),
            "firing_rate": float(layer.firing_rate),
        }
        for layer in activity.neurons
    ]


def write_layer_records(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    write_table_atomic(pa.Table.from_pylist(list(rows), schema=LAYER_SCHEMA), Path(path))


def read_layer_records(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a layers file; none when it is absent (a run or checkpoint from an older version)."""
    path = Path(path)
    return pq.read_table(path).to_pylist() if path.is_file() else []
