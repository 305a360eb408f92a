"""Per-epoch records: the metric keys of the trainer contract and their Parquet schema.

One row per epoch. The key order and types are fixed here once, because three readers depend on them:
the orchestrator's ``epochs.parquet`` (one row per trial-epoch), MLflow metrics, and reports. The
schema is explicit (not inferred from the first row) so an epoch whose value happens to be an integer
or a NaN does not change a column's type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.atomic import atomic_path

__all__ = [
    "ACTIVITY_KEYS",
    "BEST_EPOCH_ENERGY",
    "BEST_TEST_TOP1",
    "LAYER_RATE_PREFIX",
    "LAYER_SCHEMA",
    "INT_KEYS",
    "REQUIRED_KEYS",
    "TIMING_KEYS",
    "alpha_keys",
    "epoch_schema",
    "layer_rows",
    "metric_keys",
    "read_layer_records",
    "read_records",
    "write_layer_records",
    "write_records",
]

# Integer-valued keys (stored as int64); every other key is float64.
INT_KEYS: frozenset[str] = frozenset({"epoch", "best_epoch", "test_samples"})
# Keys every record has had from the start; any other key may be missing from a record written by an
# older version (a run or sweep resumed after an upgrade): it is stored as null (int) or NaN (float).
REQUIRED_KEYS: frozenset[str] = frozenset({"epoch", "best_epoch"})
# Keys that measure the machine, not the run: they differ between two otherwise identical runs.
TIMING_KEYS: frozenset[str] = frozenset({"epoch_time_s", "samples_per_s", "peak_mem_mb"})

ACTIVITY_KEYS = ("test_firing_rate", "test_spikes", "test_acs", "test_macs", "energy_uj")
"""Per-inference activity of the event test evaluation (``engine.activity``): spikes per neuron per
step, spikes, accumulates and multiply-accumulates per sample, and the energy estimate in µJ."""
BEST_TEST_TOP1 = "best_test_top1"
"""The paper's number: the best test top-1 over the epochs so far (every default objective and ranking)."""
BEST_EPOCH_ENERGY = "best_epoch_energy_uj"
"""``energy_uj`` of the best epoch so far (the one ``best_test_top1`` is from): the cost of the model one
keeps, so an accuracy–energy objective pair describes one model, not the best accuracy beside the last
epoch's energy."""

_HEAD = (
    "epoch",
    "train_loss",
    "train_loss_static",
    "train_loss_event",
    "train_loss_domain",
    "train_cka_distance",
    "train_top1",
    "test_loss",
    "test_top1",
    "test_top5",
    "test_samples",
    *ACTIVITY_KEYS,
    BEST_TEST_TOP1,
    "best_epoch",
    BEST_EPOCH_ENERGY,
    "sliding_p",
    "mixup_ratio",
    "mixup_p",
    "mixup_event_fraction",
    "train_loss_mixup_source",
    "train_loss_mixup_ratio",
    "lr",
)
_TAIL = ("epoch_time_s", "samples_per_s", "peak_mem_mb")


def alpha_keys(T: int) -> list[str]:
    """``alpha_0 … alpha_{T-1}``: σ(c_t) of the learnable per-step coefficients after the epoch."""
    return [f"alpha_{t}" for t in range(T)]


def metric_keys(T: int) -> list[str]:
    """Every per-epoch metric key, in record order (contracts.md, "Trainer")."""
    return [*_HEAD, *alpha_keys(T), *_TAIL]


def epoch_schema(T: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field(
                key, pa.int64() if key in INT_KEYS else pa.float64(), nullable=key in INT_KEYS - REQUIRED_KEYS
            )
            for key in metric_keys(T)
        ]
    )


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
