"""Synthetic sweeps with known per-seed numbers, written in the orchestrator's formats.

Used by the report tests: a sweep directory (``trials.parquet`` + ``epochs.parquet`` with the contract's
columns) and the same trials as real MLflow runs in a real SQLite tracking store (parent run tagged
``spikesweep.role=sweep``, one child per trial with the flattened config as params and per-epoch metrics
with ``step=epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.config import RunConfig

SEEDS = (42, 1024, 90210, 7)
TEST_RECORDINGS = 1000
"""Each synthetic trial's test-set size (recorded per epoch as ``test_samples``)."""


@dataclass
class SyntheticTrial:
    overrides: dict
    seed: int
    best: float
    last: float
    best_epoch: int
    status: str = "COMPLETE"
    epochs: int = 4
    T: int = 3
    arm: str | None = None

    @property
    def config(self) -> RunConfig:
        base = {"T": self.T, "epochs": self.epochs, "model.width": 0.25, "data.pair": "nshapes"}
        return RunConfig().with_overrides({**base, **self.overrides, "seed": self.seed})

    @property
    def trial_id(self) -> str:
        return f"{self.config.config_hash()}_{self.seed}_{self.status.lower()}"

    def curve(self) -> list[dict]:
        """Per-epoch rows whose maximum is ``best`` at ``best_epoch`` and whose last value is ``last``."""
        rows = []
        n = self.epochs if self.status == "COMPLETE" else max(1, self.epochs // 2)
        if self.status == "COMPLETE":
            assert self.best_epoch < n - 1 or self.best == self.last, "best and last disagree"
            assert self.last <= self.best
        for epoch in range(n):
            if epoch == self.best_epoch:
                top1 = self.best
            elif epoch == n - 1:
                top1 = self.last
            else:
                top1 = min(self.best, self.last) - 5.0 - epoch
            row = {
                "epoch": epoch,
                "train_loss": 2.0 / (epoch + 1),
                "test_top1": top1,
                "test_top5": min(100.0, top1 + 10),
                "test_samples": TEST_RECORDINGS,
                "best_test_top1": None,
                "best_epoch": None,
                "sliding_p": (epoch / max(1, self.epochs - 1)) ** 3,
                "lr": 1e-3,
            }
            for t in range(self.T):
                row[f"alpha_{t}"] = 0.5 + 0.01 * t + 0.001 * epoch * (self.seed % 5)
            rows.append(row)
        best = -1.0
        for row in rows:
            if row["test_top1"] > best:
                best, best_epoch = row["test_top1"], row["epoch"]
            row["best_test_top1"], row["best_epoch"] = best, best_epoch
        return rows


@dataclass
class SyntheticSweep:
    name: str
    trials: list[SyntheticTrial]
    varied: list[str] = field(default_factory=list)

    def trial_rows(self) -> list[dict]:
        rows = []
        for t in self.trials:
            cfg = t.config
            curve = t.curve()
            row = {
                "trial_id": t.trial_id,
                "config_hash": cfg.config_hash(),
                "seed": t.seed,
                "status": t.status,
                "pruned": t.status == "PRUNED",
                "epochs_run": len(curve),
                "best_test_top1": t.best if t.status == "COMPLETE" else curve[-1]["best_test_top1"],
                "best_epoch": t.best_epoch if t.status == "COMPLETE" else curve[-1]["best_epoch"],
                "last_test_top1": t.last if t.status == "COMPLETE" else curve[-1]["test_top1"],
                "wall_time_s": 10.0 + t.seed % 3,
                "stage": "grid",
                "mlflow_run_id": "",
                "git_commit": "0" * 40,
                "hostname": "test",
                "spikesweep_version": "0.1.0",
            }
            if any(x.arm for x in self.trials):
                row["arm"] = t.arm
            row.update({f"config.{k}": v for k, v in cfg.flat().items()})
            row["varied"] = list(self.varied)
            rows.append(row)
        return rows

    def write_dir(self, storage: Path) -> Path:
        sweep_dir = storage / self.name
        sweep_dir.mkdir(parents=True, exist_ok=True)
        rows = self.trial_rows()
        pq.write_table(pa.Table.from_pylist(rows), sweep_dir / "trials.parquet")
        epoch_rows = []
        for t, row in zip(self.trials, rows, strict=True):
            for e in t.curve():
                epoch_rows.append(
                    {"trial_id": row["trial_id"], "config_hash": row["config_hash"], "seed": t.seed, **e}
                )
        pq.write_table(pa.Table.from_pylist(epoch_rows), sweep_dir / "epochs.parquet")
        return sweep_dir

    def write_mlflow(self, tracking_uri: str, artifact_dir: Path) -> str:
        """Log the sweep as the orchestrator does; returns the parent run id."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        exp_id = client.create_experiment(self.name, artifact_location=artifact_dir.resolve().as_uri())
        parent = client.create_run(exp_id, tags={"spikesweep.role": "sweep", "spikesweep.sweep": self.name})
        parent_id = parent.info.run_id
        for t, row in zip(self.trials, self.trial_rows(), strict=True):
            tags = {
                "spikesweep.role": "trial",
                "spikesweep.trial_id": row["trial_id"],
                "spikesweep.config_hash": row["config_hash"],
                "spikesweep.seed": str(t.seed),
                "spikesweep.status": t.status,
                "mlflow.parentRunId": parent_id,
            }
            if t.arm:
                tags["spikesweep.arm"] = t.arm
            run = client.create_run(exp_id, tags=tags)
            params = [Param(k, str(v)) for k, v in t.config.flat().items()]
            metrics = []
            for e in t.curve():
                for key, value in e.items():
                    if value is not None:
                        metrics.append(Metric(key, float(value), 1000 + e["epoch"], e["epoch"]))
            for i in range(0, len(params), 100):
                client.log_batch(run.info.run_id, params=params[i : i + 100])
            client.log_batch(run.info.run_id, metrics=metrics, tags=[RunTag("git_commit", "0" * 40)])
            client.set_terminated(run.info.run_id, status="FAILED" if t.status == "FAILED" else "FINISHED")
        client.set_terminated(parent_id, status="FINISHED")
        return parent_id


def two_config_sweep(name: str = "synthetic") -> SyntheticSweep:
    """β = 0 vs β = 0.5 over three seeds, plus a failed and a pruned trial that must not count (both
    carry finite, extreme numbers: they are excluded by their status, not by a NaN)."""
    base = {"method.beta": 0.0}
    full = {"method.beta": 0.5}
    trials = [
        SyntheticTrial(base, 42, best=80.0, last=79.0, best_epoch=2),
        SyntheticTrial(base, 1024, best=81.5, last=80.0, best_epoch=1),
        SyntheticTrial(base, 90210, best=79.0, last=78.5, best_epoch=2),
        SyntheticTrial(full, 42, best=83.0, last=82.0, best_epoch=2),
        SyntheticTrial(full, 1024, best=83.5, last=81.0, best_epoch=2),
        SyntheticTrial(full, 90210, best=82.5, last=82.5, best_epoch=3),
        SyntheticTrial(full, 7, best=99.0, last=99.0, best_epoch=1, status="FAILED"),
        SyntheticTrial(base, 7, best=10.0, last=10.0, best_epoch=0, status="PRUNED"),
    ]
    return SyntheticSweep(name, trials, varied=["method.beta"])
