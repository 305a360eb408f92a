"""``train(config, run_dir, callbacks=(), resume_from=None) -> RunResult``: one run, start to finish.

A run directory's layout is :class:`engine.training.rundir.RunDir` (config, epoch and layer records,
``checkpoints/last`` and ``checkpoints/best`` — ties keep the earlier epoch, weights-only when the run
was resumed in a new directory after it — and ``result.json`` when the run ends).

Order of work, chosen so that nothing is lost and nothing is wasted:

1. validate the configuration (ranges, registry names, what the trainer needs) before reading data;
2. build data, model and optimiser; restore the checkpoint when resuming;
3. per epoch: set the learning rate, train, read the epoch's sums once, stop with
   :class:`~engine.errors.TrainingError` if the loss or the weights are not finite (the previous
   checkpoint is kept), evaluate, write the checkpoint, then the records, then call the callbacks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.atomic import atomic_write_text
from engine.config import NON_SEMANTIC_KEYS, RunConfig
from engine.errors import ConfigError, TrainingError
from engine.training.callbacks import Callback
from engine.training.checkpoint import (
    BEST_MODEL_FILE,
    Checkpoint,
    TrainerState,
    copy_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    write_weights_only,
)
from engine.training.evaluation import evaluate
from engine.training.loading import build_model
from engine.training.optim import create_optimizer, lr_at_epoch, set_lr
from engine.training.records import (
    ACTIVITY_KEYS,
    BEST_EPOCH_ENERGY,
    BEST_TEST_TOP1,
    alpha_keys,
    layer_rows,
    metric_keys,
    write_layer_records,
    write_records,
)
from engine.training.rng import capture_rng_state, epoch_generators, restore_rng_state, seed_everything
from engine.training.rundir import CONFIG_FILE, LAYERS_FILE, RECORDS_FILE, RESULT_FILE, RunDir
from engine.training.runtime import PeakMemory, configure_determinism, resolve_device
from engine.validation import check_config

__all__ = ["RunResult", "build_model", "check_config", "train"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """The outcome of a run (also written to ``result.json``)."""

    best_test_top1: float
    best_epoch: int
    last_test_top1: float
    epochs_run: int
    """Completed epochs, including those before a resume."""
    wall_time_s: float
    """Seconds from the start of ``train`` (setup included) to the last completed epoch's checkpoint,
    summed over resumes."""
    run_dir: Path


# --------------------------------------------------------------------------------------------------
# configuration checks and model construction


def _semantic_differences(a: RunConfig, b: RunConfig) -> list[str]:
    fa, fb = a.flat(), b.flat()
    return [k for k in fa if k not in NON_SEMANTIC_KEYS and fa[k] != fb.get(k)]


# --------------------------------------------------------------------------------------------------
# the run


def train(
    config: RunConfig,
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    resume_from: str | Path | None = None,
) -> RunResult:
    """Train and evaluate one run; see the module docstring for what lands in ``run_dir``.

    Args:
        config: the run configuration (validated here, before any data is read).
        run_dir: where the run's files go; created if missing. A fresh run refuses a directory that
            already holds a checkpoint (resume it instead).
        callbacks: objects with ``on_epoch_end(epoch, metrics, checkpoint_dir)``, called after each
            epoch's checkpoint is written (:mod:`engine.training.callbacks`).
        resume_from: a checkpoint directory (or a run directory, meaning its last checkpoint) to
            continue from; the configuration must match it except for non-semantic keys (device,
            paths, workers, progress).

    Raises:
        ConfigError: invalid configuration, or one that does not match ``resume_from``.
        TrainingError: a non-finite loss or weights (the last good checkpoint stays), an unreadable
            checkpoint, or a fresh run pointed at a directory that already holds one.
    """
    wall_start = time.perf_counter()
    check_config(config)
    run_dir = Path(run_dir)
    checkpoint = _checkpoint_to_resume(config, run_dir, resume_from)
    configure_determinism(config.deterministic)
    device = resolve_device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / CONFIG_FILE, config.to_yaml())
    run = _Run(config, run_dir, device, wall_start)
    status, error = "completed", None
    try:
        run.build(checkpoint)
        for epoch in range(run.state.epoch + 1, config.epochs):
            record = run.train_and_evaluate(epoch)
            for callback in callbacks:
                callback.on_epoch_end(epoch, dict(record), run.last_dir)
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result = run.result()
        _write_result(run_dir, result, status, error, config, run.memory.kind)
    return result


class _Run:
    """The state of one run between epochs, and the work of one epoch."""

    def __init__(self, config: RunConfig, run_dir: Path, device: torch.device, wall_start: float) -> None:
        self.config = config
        self.run_dir = run_dir
        self.device = device
        self.wall_start = wall_start
        self.wall_before = 0.0
        self.memory = PeakMemory(device)
        self.records: list[dict[str, Any]] = []
        self.layer_records: list[dict[str, Any]] = []
        """Per-layer activity of every epoch so far (``layers.parquet``)."""
        self.state = TrainerState(epoch=-1, global_iteration=0, best_test_top1=-math.inf, best_epoch=-1)
        self.last_dir = RunDir(run_dir).last
        self.best_dir = RunDir(run_dir).best
        self.best_model: Path | None = None
        """The file holding the best epoch's weights, linked into the next checkpoint."""

    def build(self, checkpoint: Checkpoint | None) -> None:
        """Data, model and optimiser; restored from ``checkpoint`` when resuming."""
        from engine.data import build_data  # noqa: PLC0415 — heavy imports only when a run starts
        from engine.training.loop import TrainLoop  # noqa: PLC0415

        config = self.config
        self.bundle = build_data(config)
        seed_everything(config.seed)
        self.model = build_model(config, self.bundle.num_classes).to(self.device)
        self.optimizer = create_optimizer(self.model, config)
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint.model_state)
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
            restore_rng_state(checkpoint.rng_state)
            self.records = list(checkpoint.records)
            self.layer_records = list(checkpoint.layer_records)
            self.state = checkpoint.state
            self.wall_before = checkpoint.state.wall_time_s
            self.best_model = checkpoint.path / BEST_MODEL_FILE
            write_records(self.run_dir / RECORDS_FILE, self.records, config.T)
            write_layer_records(self.run_dir / LAYERS_FILE, self.layer_records)
            if not self.best_dir.exists():  # moved to a new directory: keep the best weights visible
                write_weights_only(checkpoint.path, self.best_dir)
            log.info("resuming %s at epoch %d from %s", self.run_dir, self.state.epoch + 1, checkpoint.path)
        if config.train.compile == "blocks":
            from engine.training.compile import compile_blocks  # noqa: PLC0415 — torch._dynamo, ~3 s

            compile_blocks(self.model)
        self.loop = TrainLoop(self.model, self.optimizer, self.bundle, config, self.device)

    def train_and_evaluate(self, epoch: int) -> dict[str, Any]:
        """Train, check, evaluate, checkpoint and record one epoch; returns its record."""
        config, model = self.config, self.model
        epoch_start = time.perf_counter()
        self.memory.reset()
        lr = lr_at_epoch(epoch, config)
        set_lr(self.optimizer, lr)
        generators = epoch_generators(config.seed, epoch, self.device)
        with _progress_bar(config, epoch, self.loop.iters_per_epoch) as advance:
            stats = self.loop.train_epoch(epoch, self.state.global_iteration, generators, advance)
        if not stats.finite or not _weights_finite(model):
            raise TrainingError(
                f"non-finite training loss or weights in epoch {epoch} "
                f"(train_loss = {stats.metrics['train_loss']}); the run stopped. " + self._last_good()
            )
        test = evaluate(model, self.bundle.test_loader, self.device, config.precision, config.energy)
        improved = test["test_top1"] > self.state.best_test_top1
        self.state = TrainerState(
            epoch=epoch,
            global_iteration=self.state.global_iteration + stats.iterations,
            best_test_top1=test["test_top1"] if improved else self.state.best_test_top1,
            best_epoch=epoch if improved else self.state.best_epoch,
            wall_time_s=self.wall_before + time.perf_counter() - self.wall_start,
        )
        record = {
            "epoch": epoch,
            **stats.metrics,
            "test_loss": test["test_loss"],
            "test_top1": test["test_top1"],
            "test_top5": test["test_top5"],
            "test_samples": test["test_samples"],
            **{key: test[key] for key in ACTIVITY_KEYS},
            BEST_TEST_TOP1: self.state.best_test_top1,
            "best_epoch": self.state.best_epoch,
            BEST_EPOCH_ENERGY: test["energy_uj"] if improved else self._best_epoch_energy(),
            "lr": lr,
            **_alphas(model, config.T),
            "epoch_time_s": time.perf_counter() - epoch_start,
            "samples_per_s": stats.samples / stats.seconds if stats.seconds > 0 else math.nan,
            "peak_mem_mb": self.memory.read_mb(),
        }
        self.records.append({key: record[key] for key in metric_keys(config.T)})
        self.layer_records.extend(layer_rows(epoch, test["activity"]))
        save_checkpoint(
            self.last_dir,
            config=config,
            model=model,
            optimizer=self.optimizer,
            state=self.state,
            rng_state=capture_rng_state(),
            records=self.records,
            best_model=None if improved else self.best_model,
            layer_records=self.layer_records,
        )
        self.best_model = self.last_dir / BEST_MODEL_FILE
        if improved:
            copy_checkpoint(self.last_dir, self.best_dir)
        write_records(self.run_dir / RECORDS_FILE, self.records, config.T)
        write_layer_records(self.run_dir / LAYERS_FILE, self.layer_records)
        _log_epoch(config, self.records[-1])
        return self.records[-1]

    def _best_epoch_energy(self) -> float:
        """``energy_uj`` of the best epoch's record (NaN if a record from an older version lacks it)."""
        for record in reversed(self.records):
            if record["epoch"] == self.state.best_epoch:
                return float(record.get("energy_uj", math.nan))
        return math.nan

    def _last_good(self) -> str:
        if self.state.epoch < 0:
            return "No checkpoint had been written yet."
        return f"The last good checkpoint (epoch {self.state.epoch}) is intact at {self.last_dir}."

    def result(self) -> RunResult:
        return RunResult(
            best_test_top1=self.state.best_test_top1 if self.records else math.nan,
            best_epoch=self.state.best_epoch,
            last_test_top1=self.records[-1]["test_top1"] if self.records else math.nan,
            epochs_run=len(self.records),
            wall_time_s=self.state.wall_time_s,
            run_dir=self.run_dir,
        )


# --------------------------------------------------------------------------------------------------
# helpers


def _checkpoint_to_resume(
    config: RunConfig, run_dir: Path, resume_from: str | Path | None
) -> Checkpoint | None:
    """The checkpoint to continue from (checked against ``config``), or None after checking the directory."""
    if resume_from is None:
        _refuse_existing_run(run_dir)
        return None
    checkpoint = load_checkpoint(resume_from)
    differences = _semantic_differences(config, checkpoint.config)
    if differences:
        raise ConfigError(
            f"the configuration differs from the checkpoint at {str(checkpoint.path)!r} in "
            f"{', '.join(differences)}; a resumed run must keep every key that changes results"
        )
    return checkpoint


def _refuse_existing_run(run_dir: Path) -> None:
    try:
        existing = resolve_checkpoint(run_dir)
    except TrainingError:
        return
    raise TrainingError(
        f"{str(run_dir)!r} already holds a run (checkpoint {existing}); resume it "
        f"(`spikesweep train --resume {run_dir}` or train(..., resume_from=...)) or choose another directory"
    )


@torch.no_grad()
def _weights_finite(model: nn.Module) -> bool:
    """One device→host read: are all parameters and buffers finite?"""
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    flags = torch.stack([torch.isfinite(t).all() for t in tensors])
    return bool(flags.all())


def _alphas(model: nn.Module, T: int) -> dict[str, float]:
    if not getattr(model, "is_transfer", False):
        return dict.fromkeys(alpha_keys(T), float("nan"))
    with torch.no_grad():
        values = model.alpha().float().tolist()
    return dict(zip(alpha_keys(T), values, strict=True))


def _write_result(
    run_dir: Path, result: RunResult, status: str, error: str | None, config: RunConfig, memory_kind: str
) -> None:
    payload = {
        "status": status,
        "error": error,
        **{k: (str(v) if isinstance(v, Path) else _json_safe(v)) for k, v in asdict(result).items()},
        "epochs": config.epochs,
        "seed": config.seed,
        "config_hash": config.config_hash(),
        "peak_mem_kind": memory_kind,
    }
    _write_atomic(run_dir / RESULT_FILE, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    return str(value)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: a run that ended before its first evaluation reports ``null``."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _bar_wanted(config: RunConfig) -> bool:
    return config.progress and sys.stderr.isatty()


@contextlib.contextmanager
def _progress_bar(config: RunConfig, epoch: int, total: int) -> Iterator[Callable[[], object] | None]:
    """A tqdm bar over one epoch's iterations when ``config.progress`` and stderr is a terminal; otherwise
    nothing (a redirected log gets the plain per-epoch lines, not carriage-return redraws)."""
    if not _bar_wanted(config):
        yield None
        return
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def _log_epoch(config: RunConfig, record: dict[str, Any]) -> None:
    line = (
        f"epoch {record['epoch'] + 1}/{config.epochs}  loss {record['train_loss']:.4f}  "
        f"train {record['train_top1']:.1f}%  test {record['test_top1']:.2f}% "
        f"(top-5 {record['test_top5']:.1f}%)  "
        f"best {record['best_test_top1']:.2f}% @ {record['best_epoch'] + 1}  P {record['sliding_p']:.3f}  "
        f"lr {record['lr']:.3g}  {record['samples_per_s']:.0f} samples/s"
    )
    if _bar_wanted(config):
        from tqdm.auto import tqdm  # noqa: PLC0415

        tqdm.write(line)
    else:
        log.info(line)
