"""Optimisers, parameter groups and the epoch learning-rate schedule (spec §8).

The original run used timm's ``create_optimizer`` and ``create_scheduler``. Their behaviour is
reproduced here in a few lines, without timm:

* **parameter groups** — weight decay only on ≥2-D weights; biases, norm affines, 1-D parameters and
  the learnable per-step coefficients ``c_t`` get none; frozen parameters (the neuron threshold, a fixed
  surrogate α) are left out of the optimiser entirely;
* **lr scaling** — the effective rate is ``lr · B / 1024`` (``optim.lr_scaling = "batch/1024"``);
* **schedule** — timm's epoch-based schedulers: stepped once per epoch, so epoch ``e`` trains at
  ``lr(e)``. A linear warmup from ``warmup_lr`` covers epochs ``0 … warmup_epochs − 1`` (epoch 0 trains
  at ``warmup_lr`` exactly), then cosine with ``t_initial = E`` down to ``min_lr``, or step decay. There
  is no warmup prefix: the cosine is evaluated at the absolute epoch, as timm does by default.

The schedule is a pure function of the epoch (:func:`lr_at_epoch`), so a resumed run needs no scheduler
state beyond the epoch number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from engine.registry import Registry

if TYPE_CHECKING:
    from engine.config import OptimConfig, RunConfig, ScheduleConfig

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "create_optimizer",
    "effective_lr",
    "lr_at_epoch",
    "lr_trajectory",
    "parameter_groups",
    "set_lr",
]

OptimizerFactory = Callable[[list[dict[str, Any]], "OptimConfig", float], torch.optim.Optimizer]
ScheduleFunction = Callable[[int, float, "ScheduleConfig", int], float]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
LR_SCHEDULES: Registry[ScheduleFunction] = Registry("lr schedule")

# Names whose parameters never get weight decay whatever their shape (the per-step coefficients may be
# stored as one [T] vector or as T separate [1] scalars; both are caught by ``ndim <= 1`` as well).
NO_DECAY_NAME_PARTS: tuple[str, ...] = ("coefficient",)


# --------------------------------------------------------------------------------------------------
# parameter groups and the optimiser


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and an undecayed group, as timm's optimiser factory.

    No decay on: every parameter with ``ndim <= 1`` (biases, BatchNorm affines, the coefficients), any
    name ending in ``.bias``, and any name containing one of :data:`NO_DECAY_NAME_PARTS`. Parameters with
    ``requires_grad = False`` are skipped, so a frozen threshold is never touched by the optimiser.
    Empty groups are dropped (an optimiser rejects a group without parameters only in some versions, and
    an empty group carries no information).
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        undecayed = (
            param.ndim <= 1 or name.endswith(".bias") or any(part in name for part in NO_DECAY_NAME_PARTS)
        )
        (no_decay if undecayed else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "group": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "group": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def effective_lr(config: RunConfig) -> float:
    """The peak learning rate: ``optim.lr`` scaled by ``B / 1024`` unless ``optim.lr_scaling = none``."""
    if config.optim.lr_scaling == "batch/1024":
        return config.optim.lr * config.batch_size / 1024.0
    return config.optim.lr


def create_optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``optim.name`` over :func:`parameter_groups`, at the epoch-0 learning rate."""
    factory = OPTIMIZERS.get(config.optim.name)
    groups = parameter_groups(model, config.optim.weight_decay)
    if not groups:
        raise ValueError(f"model {type(model).__name__} has no trainable parameters")
    return factory(groups, config.optim, lr_at_epoch(0, config))


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict[str, Any]], optim: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW with (β₁, β₂) = ``optim.betas`` and ``optim.eps``; the paper's optimiser."""
    beta1, beta2 = optim.betas
    return torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=optim.eps)


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict[str, Any]], optim: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum ``optim.momentum`` — what timm's ``--opt sgd`` builds."""
    return torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, nesterov=optim.momentum > 0)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate (a Python float: changing it never syncs a device)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------------------------------
# the epoch schedule


def lr_at_epoch(epoch: int, config: RunConfig) -> float:
    """The learning rate epoch ``epoch`` (from 0) trains at.

    Warmup (``epoch < warmup_epochs``): ``warmup_lr + epoch · (lr_eff − warmup_lr) / warmup_epochs``;
    afterwards the schedule named by ``schedule.name`` at the absolute epoch.
    """
    sched = config.schedule
    peak = effective_lr(config)
    if epoch < sched.warmup_epochs:
        return sched.warmup_lr + epoch * (peak - sched.warmup_lr) / sched.warmup_epochs
    return LR_SCHEDULES.get(sched.name)(epoch, peak, sched, config.epochs)


@LR_SCHEDULES.register("cosine")
def _cosine(epoch: int, peak: float, sched: ScheduleConfig, epochs: int) -> float:
    """Half a cosine from ``peak`` at epoch 0 to ``min_lr`` at epoch ``E`` (timm, one cycle)."""
    if epoch >= epochs:
        return sched.min_lr
    return sched.min_lr + 0.5 * (peak - sched.min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


@LR_SCHEDULES.register("step")
def _step(epoch: int, peak: float, sched: ScheduleConfig, epochs: int) -> float:
    """``peak · decay_rate^⌊epoch / decay_epochs⌋`` (timm's step scheduler; N-Omniglot)."""
    return peak * sched.decay_rate ** (epoch // sched.decay_epochs)


def lr_trajectory(config: RunConfig) -> list[float]:
    """The learning rate of every epoch of a run, for plots and tests."""
    return [lr_at_epoch(e, config) for e in range(config.epochs)]
