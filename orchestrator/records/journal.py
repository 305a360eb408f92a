"""The driver's own record of a sweep: an append-only journal of every epoch each engine run reported.

Why a journal: MLflow writes are batched and Parquet files are rewritten only as trials finish, so a
driver killed at the wrong moment would lose the last epochs of the running trials — and a trial
resumed from a later checkpoint never reports them again. Every Tune result is therefore appended to
``journal.jsonl`` (one JSON line, flushed) the moment it arrives; on a restart the journal is replayed,
MLflow is brought up to date from it, and the Parquet tables (:mod:`orchestrator.records.tables`) are
rebuilt from it plus the Optuna study's trial states (orchestration.md: export curves from the
orchestrator's own records rather than pulling them back from MLflow).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.training.records import LAYER_RATE_PREFIX
from orchestrator.plan import PlannedTrial
from orchestrator.records import (
    HOSTNAME_KEY,
    SEED_DONE_KEY,
    SEED_INDEX_KEY,
    SEED_KEY,
    WALL_TIME_KEY,
    TrialStatus,
)

__all__ = ["RunRecord", "SweepRecorder", "run_key"]


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
