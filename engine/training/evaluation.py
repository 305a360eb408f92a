"""Evaluation: the event branch on the event test split, mean of the logits over time (spec §2.4, §8).

Only ``forward_event`` runs — the original evaluated ``model(x_event, x_event)`` and threw the static
branch away (spec §11 item 22), doubling the cost. The test loss is the cross-entropy of the
time-averaged logits, the original's ``eval loss``. Everything is summed on the device and read back
once at the end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.activity import ActivityMeter
from engine.config import EnergyConfig
from engine.training.runtime import autocast

log = logging.getLogger(__name__)

__all__ = [
    "Evaluable",
    "check_time_steps",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_time_steps",
    "load_evaluable",
    "recalibrate_batchnorm",
    "topk_correct",
]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """Number of samples whose label is among the top-k logits, for each k (clamped to the class count)."""
    k_max = min(max(ks), logits.shape[-1])
    top = logits.topk(k_max, dim=-1).indices
    hits = top.eq(labels.unsqueeze(-1))
    return torch.stack([hits[:, : min(k, k_max)].any(dim=-1).sum() for k in ks])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
    energy: EnergyConfig | None = None,
) -> dict[str, Any]:
    """Test loss, top-1 and top-5 (percent) and the sample count of ``model``'s event branch on ``loader``.

    With ``energy`` the spike activity, synaptic operations and energy per inference are counted as
    well (:mod:`engine.activity`, with ``energy``'s pJ per operation): the record's
    :data:`~engine.training.records.ACTIVITY_KEYS`, and ``"activity"``, the per-layer
    :class:`~engine.activity.Activity`.

    The model is put in eval mode (BatchNorm uses its running statistics) and returned to the mode it
    was in.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # summed loss, top-1 hits, top-5 hits
    count = 0  # a host integer: batch sizes are known without asking the device
    meter = contextlib.nullcontext()
    if energy is not None:
        meter = ActivityMeter(model, int(getattr(model, "T", 1)), energy.e_ac_pj, energy.e_mac_pj)
    try:
        with meter:
            for frames, labels in loader:
                frames = frames.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                with autocast(device, precision):
                    logits = model.forward_event(frames)  # [T, B, K]
                mean_logits = logits.float().mean(dim=0)
                loss_sum = F.cross_entropy(mean_logits, labels, reduction="sum")
                correct = topk_correct(mean_logits, labels, (1, 5))
                sums += torch.cat([loss_sum.double().reshape(1), correct.double()])
                count += labels.shape[0]
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the test loader yielded no samples")
    loss_sum, top1, top5 = sums.tolist()
    metrics: dict[str, Any] = {
        "test_loss": loss_sum / count,
        "test_top1": 100.0 * top1 / count,
        "test_top5": 100.0 * top5 / count,
        "test_samples": int(count),
    }
    if isinstance(meter, ActivityMeter):
        activity = meter.result(count)
        metrics.update(activity.metrics())
        metrics["activity"] = activity
    return metrics


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    batches: int,
    precision: str = "fp32",
) -> int:
    """Re-estimate every BatchNorm's running statistics from ``batches`` event batches (event branch).

    A diagnostic: a transfer model's running statistics are updated by its static pass too (spec §11
    item 23), so evaluating on events normalises with statistics partly estimated on static images. This
    resets them and runs the event branch in training mode, without gradients, over ``batches`` batches
    of ``loader`` (the event *training* split: never the test split it is then evaluated on), so each
    layer's momentum average forgets its reset value (0.9^(T·batches) of it remains). Returns the number
    of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        return 0
    for m in norms:
        m.reset_running_stats()
    was_training = model.training
    model.train()
    used = 0
    try:
        while used < batches:
            before = used
            for frames, _ in loader:
                with autocast(device, precision):
                    model.forward_event(frames.to(device, non_blocking=True))
                used += 1
                if used == batches:
                    break
            if used == before:
                raise ValueError("the calibration loader yielded no batches")
    finally:
        model.train(was_training)
    return used


@dataclass
class Evaluable:
    """A checkpoint ready to evaluate: its weights and config, the device, the data, the restored model."""

    loaded: Any
    config: Any
    device: torch.device
    bundle: Any
    model: nn.Module


def load_evaluable(
    path: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    check: Callable[[Any], None] | None = None,
) -> Evaluable:
    """Read a checkpoint of either format (:mod:`engine.training.loading`), check its config, build its
    data and restore its model on the config's device — what ``eval`` and ``landscape`` start from.
    ``check(config)`` runs before any data is built (a request that does not fit the checkpoint fails
    in a second, not after the data)."""
    from engine.data import build_data  # noqa: PLC0415 — heavy imports only when evaluating
    from engine.training.loading import load_weights, restore_model  # noqa: PLC0415
    from engine.training.runtime import resolve_device  # noqa: PLC0415
    from engine.validation import check_config  # noqa: PLC0415

    loaded = load_weights(path, overrides)
    config = check_config(_speed_settings_for_here(loaded.config))
    if check is not None:
        check(config)
    device = resolve_device(config.device)
    bundle = build_data(config)
    model = restore_model(loaded, bundle.num_classes).to(device)
    return Evaluable(loaded, config, device, bundle, model)


def _speed_settings_for_here(config: Any) -> Any:
    """A run trained with Triton neurons evaluated where they cannot run (a laptop without CUDA): the
    neuron backend changes speed, not numbers (it is not part of the configuration hash), so evaluation
    takes ``auto`` there instead of refusing the checkpoint; training keeps the refusal."""
    if config.model.neuron_backend != "triton":
        return config
    from engine.triton_neurons import unavailable_reason  # noqa: PLC0415

    reason = unavailable_reason(config.device)
    if reason is None:
        return config
    log.info("evaluating with model.neuron_backend = auto instead of triton: %s", reason)
    return config.with_overrides({"model.neuron_backend": "auto"})


def evaluate_checkpoint(
    path: str | Path, overrides: list[str] | dict[str, Any] | None = None, recalibrate_bn: int = 0
) -> dict[str, Any]:
    """Evaluate a checkpoint of either format (:mod:`engine.training.loading`) on its test split.

    Returns the metrics of :func:`evaluate` plus where they came from (checkpoint, format, model, pair).
    ``recalibrate_bn`` > 0 first re-estimates the BatchNorm running statistics on that many event
    training batches (:func:`recalibrate_batchnorm`).
    """
    e = load_evaluable(path, overrides)
    loaded, config, device, bundle, model = e.loaded, e.config, e.device, e.bundle, e.model
    used = recalibrate_batchnorm(model, bundle.train_loader, device, recalibrate_bn, config.precision)
    metrics = evaluate(model, bundle.test_loader, device, config.precision, config.energy)
    return {
        "checkpoint": str(loaded.path),
        "source": loaded.source,
        "model": config.model.name,
        "pair": config.data.pair,
        **metrics,
        "bn_recalibration_batches": used,
        **{f"checkpoint_{k}": v for k, v in loaded.info.items()},
    }


def check_time_steps(steps: Sequence[int], T: int) -> list[int]:
    """``steps`` sorted and unique, each in 1…T (the checkpoint's time steps), or a ConfigError naming
    the allowed range."""
    from engine.errors import ConfigError  # noqa: PLC0415

    bad = [s for s in steps if not 1 <= s <= T]
    if bad or not steps:
        shown = ", ".join(str(s) for s in bad) or "none"
        raise ConfigError(
            f"--time-steps {shown}: each must be a whole number from 1 to T = {T} (the model's T)"
        )
    return sorted(set(steps))


def evaluate_time_steps(
    path: str | Path, steps: Sequence[int], overrides: list[str] | dict[str, Any] | None = None
) -> tuple[Evaluable, list[dict[str, Any]]]:
    """Accuracy and activity of a checkpoint when inference stops after each T' of ``steps``.

    Anytime inference: every test recording keeps the frames it was trained with (binned into T), and
    the network runs on the first T' of them, its logits averaged over those T' steps. At T' = T this
    is exactly :func:`evaluate_checkpoint`. (Re-binning a recording into T' coarser frames would be
    another experiment: different input statistics than the network was trained on.)
    """
    chosen: list[int] = []

    def check(config: Any) -> None:
        chosen.extend(check_time_steps(list(steps), config.T))

    e = load_evaluable(path, overrides, check)
    rows = []
    for t in chosen:
        with _running_time_steps(e.model, t):
            metrics = evaluate(
                e.model, _first_steps(e.bundle.test_loader, t), e.device, e.config.precision, e.config.energy
            )
        metrics.pop("activity")  # per layer: `eval` without --time-steps prints it
        rows.append({"time_steps": t, **metrics})
    return e, rows


def _first_steps(
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]], t: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for frames, labels in loader:  # frames (B, T, 2, H, W)
        yield frames[:, :t], labels


@contextlib.contextmanager
def _running_time_steps(model: nn.Module, t: int) -> Iterator[None]:
    """The model checks its inputs against its T: let it take the first ``t`` steps meanwhile."""
    saved = model.T
    model.T = t
    try:
        yield
    finally:
        model.T = saved
