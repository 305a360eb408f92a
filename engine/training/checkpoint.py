"""Self-contained, atomically written checkpoint directories.

A checkpoint directory holds everything needed to continue a run bit-for-bit somewhere else (Ray Tune
copies it to its storage and hands the copy back after a failure):

* ``model.pt``           — the model's ``state_dict``;
* ``best_model.pt``      — the weights of the best epoch so far (a hard link to that epoch's
  ``model.pt`` where the file system allows, so it costs no space), so that the best model survives a
  move to another machine;
* ``training_state.pt``  — optimiser state, scheduler position, last completed epoch, global iteration,
  best metric and epoch, and every global RNG state;
* ``config.yaml``        — the run configuration;
* ``epochs.parquet``     — the per-epoch records so far (so a resumed run in a fresh run directory still
  writes the full history);
* ``layers.parquet``     — the per-layer activity rows so far, for the same reason;
* ``meta.json``          — a human-readable summary, written last: a directory without it is incomplete.

Writes are atomic at the directory level: the files go into a temporary sibling directory, which then
replaces the target by rename. A crash at any point leaves either the previous checkpoint or the new
one, never a mixture; if it happens between the two renames, :func:`resolve_checkpoint` finds the
previous one under its ``.old`` name. The trainer never writes a checkpoint from a non-finite state, so
the last checkpoint on disk is always a good one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.config import RunConfig
from engine.errors import TrainingError
from engine.training.records import (
    BEST_TEST_TOP1,
    read_layer_records,
    read_records,
    write_layer_records,
    write_records,
)
from engine.training.rundir import CONFIG_FILE, LAYERS_FILE, META_FILE, RECORDS_FILE, RunDir

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "TrainerState",
    "copy_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "resolve_checkpoint",
    "save_checkpoint",
    "write_weights_only",
]

CHECKPOINT_FORMAT = 1
MODEL_FILE = "model.pt"
BEST_MODEL_FILE = "best_model.pt"
STATE_FILE = "training_state.pt"


@dataclass
class TrainerState:
    """Where a run stands after a completed epoch (everything but the tensors)."""

    epoch: int
    """The last completed epoch (from 0); a resumed run continues with ``epoch + 1``."""
    global_iteration: int
    """Optimiser steps taken so far; the sliding schedule's ``i``."""
    best_test_top1: float
    best_epoch: int
    wall_time_s: float = 0.0
    """Wall time of the run up to this checkpoint, summed over resumes."""


@dataclass
class Checkpoint:
    """A loaded checkpoint directory."""

    path: Path
    config: RunConfig
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    state: TrainerState
    rng_state: dict[str, Any]
    records: list[dict[str, Any]]
    layer_records: list[dict[str, Any]] = field(default_factory=list)
    """Per-layer activity rows so far (``layers.parquet``; none in a checkpoint of an older version)."""


def save_checkpoint(
    target: str | Path,
    *,
    config: RunConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainerState,
    rng_state: dict[str, Any],
    records: Sequence[dict[str, Any]],
    best_model: Path | None = None,
    layer_records: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write a complete checkpoint to ``target`` atomically and return its path.

    ``best_model`` is the file holding the best epoch's weights (usually the previous checkpoint's
    ``best_model.pt``); ``None`` means this epoch is the best.
    """
    target = Path(target)
    training_state = {
        "format": CHECKPOINT_FORMAT,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"name": config.schedule.name, "next_epoch": state.epoch + 1},
        "epoch": state.epoch,
        "global_iteration": state.global_iteration,
        BEST_TEST_TOP1: state.best_test_top1,
        "best_epoch": state.best_epoch,
        "wall_time_s": state.wall_time_s,
        "rng": rng_state,
    }
    meta = {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch,
        "global_iteration": state.global_iteration,
        BEST_TEST_TOP1: state.best_test_top1,
        "best_epoch": state.best_epoch,
        "wall_time_s": state.wall_time_s,
        "config_hash": config.config_hash(exclude=()),
        "last_metrics": dict(records[-1]) if records else {},
        "written_unix": time.time(),
    }

    def write(directory: Path) -> None:
        _torch_save({k: v.detach() for k, v in model.state_dict().items()}, directory / MODEL_FILE)
        _link_or_copy(best_model or directory / MODEL_FILE, directory / BEST_MODEL_FILE)
        _torch_save(training_state, directory / STATE_FILE)
        _write_text(directory / CONFIG_FILE, config.to_yaml())
        write_records(directory / RECORDS_FILE, records, config.T)
        write_layer_records(directory / LAYERS_FILE, layer_records)
        _write_text(directory / META_FILE, json.dumps(meta, indent=2, default=float) + "\n")

    _replace_directory(target, write)
    return target


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Atomically make ``target`` a copy of the checkpoint ``source`` (hard links where possible).

    Checkpoint files are never modified in place (a new checkpoint is new files), so hard links are a
    safe zero-cost copy; across file systems it falls back to copying bytes.
    """
    source, target = Path(source), Path(target)

    def write(directory: Path) -> None:
        for item in sorted(source.iterdir()):
            _link_or_copy(item, directory / item.name)

    _replace_directory(target, write)
    return target


def write_weights_only(source: str | Path, target: str | Path) -> Path:
    """Make ``target`` a weights-only checkpoint of the best epoch recorded in checkpoint ``source``.

    Used when a run resumes in a directory that has no ``checkpoints/best`` (a checkpoint moved to
    another machine): the best weights travel in every checkpoint as ``best_model.pt``, the optimiser
    state of that epoch does not. The result evaluates like any checkpoint but cannot be resumed.
    """
    source, target = Path(source), Path(target)
    meta = json.loads((source / META_FILE).read_text())
    best_epoch = int(meta["best_epoch"])
    records = [r for r in read_records(source / RECORDS_FILE) if r["epoch"] <= best_epoch]
    config = RunConfig.from_yaml(source / CONFIG_FILE)
    best_meta = {
        "format": CHECKPOINT_FORMAT,
        "weights_only": True,
        "epoch": best_epoch,
        BEST_TEST_TOP1: meta[BEST_TEST_TOP1],
        "best_epoch": best_epoch,
        "config_hash": meta["config_hash"],
        "last_metrics": records[-1] if records else {},
        "written_unix": time.time(),
    }

    def write(directory: Path) -> None:
        _link_or_copy(source / BEST_MODEL_FILE, directory / MODEL_FILE)
        _link_or_copy(source / CONFIG_FILE, directory / CONFIG_FILE)
        write_records(directory / RECORDS_FILE, records, config.T)
        layers = [r for r in read_layer_records(source / LAYERS_FILE) if r["epoch"] <= best_epoch]
        write_layer_records(directory / LAYERS_FILE, layers)
        _write_text(directory / META_FILE, json.dumps(best_meta, indent=2, default=float) + "\n")

    _replace_directory(target, write)
    return target


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory meant by ``path``: a checkpoint itself, or a run directory (→ last).

    Recovers the previous checkpoint if a crash happened between the two renames of a write.
    """
    path = Path(path)
    candidates = [path, RunDir(path).last]
    for candidate in candidates:
        if (candidate / META_FILE).is_file():
            return candidate
        old = candidate.parent / f".{candidate.name}.old"
        if not candidate.exists() and (old / META_FILE).is_file():
            return old
    raise TrainingError(
        f"no checkpoint at {str(path)!r}: expected a checkpoint directory holding {META_FILE}, "
        f"{MODEL_FILE} and {STATE_FILE}, a run directory with checkpoints/last/, or a sweep's run "
        "directory (runs/<plan key>[/seed_<s>]) with best/"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint directory, or a run directory's last one, written by :func:`save_checkpoint`."""
    directory = resolve_checkpoint(path)
    if not (directory / STATE_FILE).is_file():
        raise TrainingError(
            f"{str(directory)!r} is a weights-only checkpoint (the best epoch of a run that moved): "
            "evaluate it with `spikesweep eval`; it cannot be resumed"
        )
    try:
        training_state = torch.load(directory / STATE_FILE, map_location=map_location, weights_only=True)
        model_state = torch.load(directory / MODEL_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, keep the cause
        raise TrainingError(f"checkpoint {str(directory)!r} cannot be read: {exc}") from exc
    if training_state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(
            f"checkpoint {str(directory)!r} has format {training_state.get('format')!r}; "
            f"this version reads format {CHECKPOINT_FORMAT}"
        )
    return Checkpoint(
        path=directory,
        config=RunConfig.from_yaml(directory / CONFIG_FILE),
        model_state=model_state,
        optimizer_state=training_state["optimizer"],
        state=TrainerState(
            epoch=int(training_state["epoch"]),
            global_iteration=int(training_state["global_iteration"]),
            best_test_top1=float(training_state[BEST_TEST_TOP1]),
            best_epoch=int(training_state["best_epoch"]),
            wall_time_s=float(training_state["wall_time_s"]),
        ),
        rng_state=training_state["rng"],
        records=read_records(directory / RECORDS_FILE),
        layer_records=read_layer_records(directory / LAYERS_FILE),
    )


def load_model_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Just the weights of a checkpoint file (``model.pt`` or ``best_model.pt``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise TrainingError(f"checkpoint weights {str(path)!r} cannot be read: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# atomic file-system helpers


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (files are never modified in place), or copy across devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _replace_directory(target: Path, write: Callable[[Path], None]) -> None:
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    old = parent / f".{target.name}.old"
    try:
        os.chmod(tmp, 0o755)
        write(tmp)
        _fsync_directory(tmp)
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_directory(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
