"""Sliding training: how often a static sample is replaced by its paired event sample (spec §4.1).

A schedule maps the global iteration ``i = epoch·L + batch_index`` (counted from 0; ``L`` iterations
per epoch, ``E`` epochs) to a replacement probability ``P ∈ [0, 1]``. With ``N = E·L·end_frac``:

==============  ==========================================================================
``poly``        ``min(1, (i/N)^pow)`` — the paper (pow = 3: 0.125 at half time, 0.42 at 75 %)
``linear``      ``min(1, i/N)``
``cosine``      ``(1 − cos(π·min(1, i/N)))/2``
``step``        0 while ``epoch ≤ E/2``, then 1 — the original ``--no-sliding-training``
``none``        0: the static stream is never replaced
``event_only``  1: both streams carry events from the first iteration
==============  ==========================================================================

:func:`replace_static` then replaces each static sample independently (all T steps at once) when a
uniform draw from a seeded ``torch.Generator`` falls below P — no Python ``random``, so a run is
reproducible from its seed, and with a generator on the training device nothing crosses to the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.registry import Registry

__all__ = ["SCHEDULES", "ScheduleContext", "replace_static", "replacement_probability"]


@dataclass(frozen=True)
class ScheduleContext:
    """Where training stands, and the schedule's shape parameters."""

    iteration: int
    iters_per_epoch: int
    epochs: int
    pow: float = 3.0
    end_frac: float = 1.0

    @property
    def progress(self) -> float:
        """``i / (E·L·end_frac)``, capped at 1."""
        return min(1.0, self.iteration / (self.epochs * self.iters_per_epoch * self.end_frac))

    @property
    def epoch(self) -> int:
        return self.iteration // self.iters_per_epoch


SCHEDULES: Registry[Callable[[ScheduleContext], float]] = Registry("sliding schedule")


@SCHEDULES.register("poly")
def poly(c: ScheduleContext) -> float:
    return c.progress**c.pow


@SCHEDULES.register("linear")
def linear(c: ScheduleContext) -> float:
    return c.progress


@SCHEDULES.register("cosine")
def cosine(c: ScheduleContext) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * c.progress))


@SCHEDULES.register("step")
def step(c: ScheduleContext) -> float:
    return 0.0 if c.epoch <= c.epochs / 2 else 1.0


@SCHEDULES.register("none")
def none(c: ScheduleContext) -> float:
    return 0.0


@SCHEDULES.register("event_only")
def event_only(c: ScheduleContext) -> float:
    return 1.0


def replacement_probability(
    name: str,
    iteration: int,
    iters_per_epoch: int,
    epochs: int,
    pow: float = 3.0,
    end_frac: float = 1.0,
) -> float:
    """P for the schedule ``name`` at global iteration ``iteration`` (a plain float, computed on the host)."""
    schedule = SCHEDULES.get(name)
    if iteration < 0 or iters_per_epoch < 1 or epochs < 1:
        raise ValueError(
            "need iteration ≥ 0, iters_per_epoch ≥ 1 and epochs ≥ 1; "
            f"got {iteration}, {iters_per_epoch}, {epochs}"
        )
    if not 0 < end_frac <= 1 or not pow > 0:
        raise ValueError(f"need 0 < end_frac ≤ 1 and pow > 0; got end_frac={end_frac}, pow={pow}")
    return float(schedule(ScheduleContext(iteration, iters_per_epoch, epochs, pow, end_frac)))


def replace_static(
    x_static: Tensor, x_event: Tensor, p: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Replace each static sample by the event sample at the same batch position with probability ``p``.

    Args:
        x_static: ``[B, ...]`` static stream (may be a stride-0 expanded view).
        x_event: ``[B, ...]`` event stream of the same shape (same labels row by row).
        p: replacement probability; ``0`` never replaces, ``1`` always does.
        generator: the seeded generator; one uniform number is drawn per sample whatever ``p`` is,
            so the random stream does not depend on the schedule. Put it on the tensors' device to
            avoid a host-to-device copy.

    Returns:
        ``(mixed, mask)``: the new static stream and the ``[B]`` bool mask of replaced samples.
    """
    if x_static.shape != x_event.shape:
        raise ValueError(
            f"static and event batches must have the same shape; got static {tuple(x_static.shape)} "
            f"and event {tuple(x_event.shape)}"
        )
    u = torch.rand(x_static.shape[0], generator=generator, device=generator.device)
    mask = (u < p).to(x_static.device, non_blocking=True)
    where = mask.view(-1, *([1] * (x_static.dim() - 1)))
    return torch.where(where, x_event, x_static), mask
