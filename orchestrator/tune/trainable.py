"""The Ray Tune function trainable: one planned trial = the engine trainer run on its seed(s).

The trainer knows nothing about Ray; this module adapts it. A callback reports every epoch to Tune
with a checkpoint (``tune.report(metrics, checkpoint=...)``), so a crashed trial is retried from its
last epoch (``FailureConfig(max_failures)``) and a stopped sweep resumes where it stood. A trial of the
seed-aware ``wilcoxon`` pruner runs its seeds one after another inside one trial; the checkpoint then
also records which seeds are done, so a retry continues with the right seed and epoch.

What the Tune checkpoint holds::

    engine/            the trainer's checkpoint of the running seed (absent between two seeds)
    sweep_state.json   the next seed to run and a summary of every finished seed

Each engine run is also exported to ``<sweep>/runs/<plan_key>/seed_<seed>/`` (the best-epoch weights as
they improve; config, epoch records and result when it finishes): the sweep directory is the storage Ray
Tune already requires to be shared between nodes, and users want the winning weights without
re-training. The engine's own working files live in a node-local scratch directory
(:func:`scratch_dir`), removed when the trial ends however it ends.

Reused actors (``TuneConfig(reuse_actors=True)``) run several trials in one process, so everything the
process keeps is set again at each start (threads, GPU memory bound); the trainer seeds every RNG itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path
from engine.config import RunConfig
from engine.errors import TrainingError
from engine.training.records import BEST_TEST_TOP1
from engine.training.rundir import CONFIG_FILE, LAYERS_FILE, META_FILE, RECORDS_FILE, RESULT_FILE, RunDir
from orchestrator.plan import PlannedTrial
from orchestrator.records import (
    COMPLETE_KEY,
    EPOCHS_DONE_KEY,
    FAILED_KEY,
    HOSTNAME_KEY,
    SEED_DONE_KEY,
    SEED_INDEX_KEY,
    SEED_KEY,
    WALL_TIME_KEY,
)
from orchestrator.sweepdir import BEST_EXPORT, SweepDir

__all__ = ["FAULT_ENV", "FaultSpec", "TrialSetup", "run_trial"]

FAULT_ENV = "SPIKESWEEP_FAULT_ONCE"
"""``<plan_key>:<epoch>``: the trial with that plan key raises once, just before reporting that epoch.

Read by the driver (not the workers) and passed to the trainable, so it reaches every node. It exists to
prove that a crashed trial is retried from its checkpoint and ends with the numbers of an undisturbed
run; nothing else uses it.
"""
STATE_FILE = "sweep_state.json"
ENGINE_DIR = "engine"


@dataclass(frozen=True)
class FaultSpec:
    plan_key: str
    epoch: int

    @classmethod
    def from_env(cls) -> FaultSpec | None:
        raw = os.environ.get(FAULT_ENV, "").strip()
        if not raw:
            return None
        key, _, epoch = raw.rpartition(":")
        if not key or not epoch.isdigit():
            raise ValueError(f"{FAULT_ENV}={raw!r}: expected <plan_key>:<epoch>")
        return cls(key, int(epoch))


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares (passed once through ``tune.with_parameters``)."""

    base: dict[str, Any]
    """The base run configuration (``RunConfig.to_dict()``)."""
    sweep_dir: str
    metric: str
    """The sweep's objective key: every result must carry it (Tune checks), even a failure report."""
    cpus: float
    gpu_fraction: float
    fault: FaultSpec | None = None


@dataclass
class _Progress:
    """Where a trial stands between seeds (the ``sweep_state.json`` of its checkpoint)."""

    next_seed_index: int = 0
    has_engine: bool = False
    finished: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path | None) -> _Progress:
        if directory is None or not (directory / STATE_FILE).is_file():
            return cls()
        data = json.loads((directory / STATE_FILE).read_text())
        return cls(**data)


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Tune entry point (wrapped with ``tune.with_parameters(run_trial, setup=...)``)."""
    from ray import tune  # noqa: PLC0415 — workers import Ray anyway; keeps this module light to import

    from engine.training import train  # noqa: PLC0415

    planned = PlannedTrial.from_config(config)
    _bound_resources(setup)
    # One line per epoch and trial is noise next to the driver's progress table.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    work = scratch_dir(setup, planned, tune.get_context().get_trial_id())
    # A plan key runs in one Tune trial at a time, so any scratch of it on this node is left over from
    # an earlier attempt (a killed worker, or a Tune trial lost with a killed driver).
    for stale in work.parent.glob(f"{planned.plan_key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _run_seeds(planned, setup, work, train)
    finally:
        # Everything worth keeping is in Tune's checkpoint (to resume) or exported (finished runs and
        # best-so-far weights): a stopped, pruned or failed trial leaves nothing on the node either.
        shutil.rmtree(work, ignore_errors=True)


def _run_seeds(planned: PlannedTrial, setup: TrialSetup, work: Path, train: Any) -> None:
    from ray import tune  # noqa: PLC0415

    restored = _restore(tune.get_checkpoint(), work / "restored")
    progress = _Progress.load(restored)
    base = RunConfig.from_dict(setup.base)
    for index in range(progress.next_seed_index, len(planned.seeds)):
        seed = planned.seeds[index]
        run_config = base.with_overrides({**planned.overrides, "seed": seed, "progress": False})
        run_dir = work / f"seed_{seed}"
        resume = restored / ENGINE_DIR if (restored and progress.has_engine) else None
        reporter = _Reporter(planned, index, run_config, progress, setup, work)
        try:
            train(run_config, run_dir, callbacks=[reporter], resume_from=resume)
        except TrainingError as exc:
            # Deterministic (a non-finite loss recurs on every retry): end the trial as failed, told
            # to Optuna as FAIL, instead of burning the retries.
            failure = {setup.metric: math.nan, **reporter.last_metrics}
            tune.report({**failure, FAILED_KEY: str(exc), SEED_KEY: seed, SEED_INDEX_KEY: index})
            return
        _export_file(RunDir(run_dir).result, _export_dir(setup, planned, seed) / RESULT_FILE)
        shutil.rmtree(run_dir, ignore_errors=True)
        progress = reporter.progress
        restored = None


class _Reporter:
    """The trainer callback: every epoch → one ``tune.report`` with a checkpoint."""

    def __init__(
        self,
        planned: PlannedTrial,
        index: int,
        config: RunConfig,
        progress: _Progress,
        setup: TrialSetup,
        work: Path,
    ) -> None:
        self.planned = planned
        self.index = index
        self.seed = planned.seeds[index]
        self.config = config
        self.progress = progress
        self.setup = setup
        self.stage = work / "tune_checkpoint"
        self.last_metrics: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], checkpoint_dir: Path) -> None:
        from ray import tune  # noqa: PLC0415

        from engine.training.checkpoint import copy_checkpoint  # noqa: PLC0415

        self._maybe_inject_fault(epoch)
        epochs = self.config.epochs
        seed_done = epoch == epochs - 1
        complete = seed_done and self.index == len(self.planned.seeds) - 1
        wall = _wall_time(checkpoint_dir)
        summary = {
            SEED_KEY: self.seed,
            SEED_INDEX_KEY: self.index,
            BEST_TEST_TOP1: metrics[BEST_TEST_TOP1],
            "best_epoch": metrics["best_epoch"],
            "last_test_top1": metrics["test_top1"],
            "epochs_run": epoch + 1,
            "wall_time_s": wall,
        }
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        export = _export_dir(self.setup, self.planned, self.seed)
        run_dir = checkpoint_dir.parent.parent
        if int(metrics["best_epoch"]) == epoch:
            # Exported as it improves, so the best weights survive a resume on another node (the
            # trainer's own best/ lives in node-local scratch and is not part of Tune's checkpoint).
            copy_checkpoint(RunDir(run_dir).best, export / BEST_EXPORT)
        if seed_done:
            for name in (CONFIG_FILE, RECORDS_FILE, LAYERS_FILE):
                _export_file(run_dir / name, export / name)
            progress = _Progress(self.index + 1, False, [*self.progress.finished, summary])
        else:
            copy_checkpoint(checkpoint_dir, self.stage / ENGINE_DIR)
            progress = _Progress(self.index, True, list(self.progress.finished))
        (self.stage / STATE_FILE).write_text(json.dumps(asdict(progress)))
        report = {
            **{k: float(v) for k, v in metrics.items()},
            "epoch": int(metrics["epoch"]),
            "best_epoch": int(metrics["best_epoch"]),
            SEED_KEY: self.seed,
            SEED_INDEX_KEY: self.index,
            EPOCHS_DONE_KEY: self.index * epochs + epoch + 1,
            SEED_DONE_KEY: seed_done,
            COMPLETE_KEY: complete,
            HOSTNAME_KEY: socket.gethostname(),
            WALL_TIME_KEY: wall,
            **_layer_rates(checkpoint_dir, epoch),
        }
        self.last_metrics = {k: v for k, v in report.items() if k not in (SEED_DONE_KEY, COMPLETE_KEY)}
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(self.stage)))
        self.progress = progress

    def _maybe_inject_fault(self, epoch: int) -> None:
        fault = self.setup.fault
        if fault is None or fault.plan_key != self.planned.plan_key or fault.epoch != epoch:
            return
        marker = SweepDir(Path(self.setup.sweep_dir)).faults / f"{fault.plan_key}-epoch{epoch}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # already raised once
        os.close(fd)
        raise RuntimeError(f"injected fault ({FAULT_ENV}) in trial {fault.plan_key} at epoch {epoch}")


def scratch_dir(setup: TrialSetup, planned: PlannedTrial, trial_id: str) -> Path:
    """Node-local working space of one trial: the engine's run directories and checkpoint staging.

    Deliberately outside Tune's trial directory: on the driver's node that directory lives inside Tune's
    experiment staging area, which Tune copies wholesale to the sweep directory at every experiment
    snapshot — it would copy every engine checkpoint again and trip over the trainer's atomic renames.
    ``$SPIKESWEEP_SCRATCH`` overrides the default (the system temp directory).
    """
    root = Path(os.environ.get("SPIKESWEEP_SCRATCH") or tempfile.gettempdir()) / "spikesweep-scratch"
    sweep = hashlib.sha1(setup.sweep_dir.encode()).hexdigest()[:10]
    return root / f"{Path(setup.sweep_dir).name}-{sweep}" / f"{planned.plan_key}-{trial_id}"


def _bound_resources(setup: TrialSetup) -> None:
    """Threads = the trial's CPUs; a fractional GPU bounds this process's share of device memory."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(max(1, int(setup.cpus)))
    if 0 < setup.gpu_fraction < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(setup.gpu_fraction, torch.cuda.current_device())


def _restore(checkpoint: Any, target: Path) -> Path | None:
    """A local copy of the Tune checkpoint to resume from (None for a fresh trial)."""
    shutil.rmtree(target, ignore_errors=True)
    if checkpoint is None:
        return None
    checkpoint.to_directory(str(target))
    return target


def _wall_time(checkpoint_dir: Path) -> float:
    """The run's wall time so far, summed over resumes (kept by the trainer in the checkpoint)."""
    try:
        meta = json.loads((checkpoint_dir / META_FILE).read_text())
        value = float(meta.get("wall_time_s", math.nan))
    except (OSError, ValueError):
        value = math.nan
    return value


def _export_dir(setup: TrialSetup, planned: PlannedTrial, seed: int) -> Path:
    return SweepDir(Path(setup.sweep_dir)).run_export(planned.plan_key, seed)


def _export_file(source: Path, target: Path) -> None:
    if not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _layer_rates(checkpoint_dir: Path, epoch: int) -> dict[str, float]:
    """``firing_rate/<layer>`` of this epoch, from the checkpoint the trainer has just written (the
    trainer callback gets the epoch's record; the per-layer rows live beside it)."""
    from engine.training.records import LAYER_RATE_PREFIX, read_layer_records  # noqa: PLC0415

    rows = read_layer_records(checkpoint_dir / LAYERS_FILE)
    return {f"{LAYER_RATE_PREFIX}{r['layer']}": r["firing_rate"] for r in rows if r["epoch"] == epoch}
