"""Time-step mixup: static frames first, the paired event frames after a random switch step.

Our implementation of the idea of TMKT ("Time-step Mixup for Efficient Spiking Knowledge Transfer from
Static to Event Domain", arXiv 2511.12150), the successor of the paper reproduced here. Sliding training
(:mod:`engine.sliding`) replaces a *whole* static sample by its event sample with probability P(i); the
mixup replaces a *suffix* of each static sequence instead:

for each static sample, walk t = 1…T drawing u_t ~ U(0, 1); the first t with u_t < p is the switch step
t*, and frames t*…T are replaced by the paired event sample's frames at the same steps (no switch: the
sample stays static). The expected number of replaced frames is

    E = Σ_{t=1..T} p q^(t−1) (T − t + 1) = T − q (1 − q^T) / p,   q = 1 − p,

so the target mix ratio r (the expected *fraction* E/T) fixes p, found by bisection (E/T increases with
p from 0 to 1): T = 10, r = 0.5 → p ≈ 0.131; T = 6, r = 0.5 → p ≈ 0.195. The ratio itself follows a
schedule over training (``constant``, or r·base(i) for the sliding schedules ``poly``, ``linear``,
``cosine``), so the paper's curriculum and the mixup can be crossed.

What the successor paper leaves unspecified, and what we chose (named so results are read right):
the per-sample draws (independent per sample, from the run's seeded ``mixup`` stream); how the mixup
combines with whole-sample replacement (applied after it, so a replaced sample stays all-event); the
auxiliary heads' inputs (the per-step transfer feature of the static pass, flattened), their form (one
linear layer each) and losses (binary cross-entropy of "is this frame an event frame", and the squared
error of the predicted fraction of event frames); and that they see the static pass only.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from engine.config import MIXUP_BASES, MIXUP_MODES
from engine.sliding import SCHEDULES, ScheduleContext

__all__ = [
    "MIXUP_BASES",
    "MIXUP_MODES",
    "expected_fraction",
    "mix_ratio",
    "switch_probability",
    "timestep_mix",
]


def expected_fraction(T: int, p: float) -> float:
    """Expected fraction of replaced frames, ``(T − q(1 − q^T)/p) / T``, for switch probability ``p``."""
    if not 0.0 <= p <= 1.0 or T < 1:
        raise ValueError(f"need 0 ≤ p ≤ 1 and T ≥ 1; got p={p}, T={T}")
    if p == 0.0:
        return 0.0
    q = 1.0 - p
    return (T - q * (1.0 - q**T) / p) / T


@functools.lru_cache(maxsize=4096)
def switch_probability(T: int, ratio: float, tol: float = 1e-12) -> float:
    """The per-step switch probability ``p`` whose expected replaced fraction is ``ratio`` (bisection)."""
    if not 0.0 <= ratio <= 1.0 or not math.isfinite(ratio):
        raise ValueError(f"mix ratio {ratio} must be in [0, 1]")
    if ratio == 0.0 or ratio == 1.0:
        return ratio
    low, high = 0.0, 1.0
    while high - low > tol:
        mid = 0.5 * (low + high)
        if expected_fraction(T, mid) < ratio:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def mix_ratio(base: str, ratio: float, context: ScheduleContext) -> float:
    """The target ratio at this point of training: ``ratio``, or ``ratio × base(i)``."""
    if base == "constant":
        return ratio
    if base not in MIXUP_BASES:
        raise ValueError(f"unknown mixup base {base!r}; allowed: {', '.join(MIXUP_BASES)}")
    return ratio * float(SCHEDULES.get(base)(context))


def timestep_mix(
    x_static: Tensor, x_event: Tensor, p: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Replace a suffix of each static sequence by the event frames at the same steps.

    Args:
        x_static, x_event: ``[B, T, ...]`` streams of the same shape, paired row by row (the static one
            may be a stride-0 expanded view).
        p: per-step switch probability (:func:`switch_probability`).
        generator: the seeded generator; ``B·T`` uniforms are drawn whatever ``p`` is, so the stream does
            not depend on the schedule. On the tensors' device, nothing crosses to the host.

    Returns:
        ``(mixed, mask)``: the mixed stream and the ``[B, T]`` bool mask of event frames (a prefix of
        False then a suffix of True in every row).
    """
    if x_static.shape != x_event.shape:
        raise ValueError(
            f"static and event batches must have the same shape; got {tuple(x_static.shape)} and "
            f"{tuple(x_event.shape)}"
        )
    B, T = x_static.shape[:2]
    u = torch.rand(B, T, generator=generator, device=generator.device)
    mask = (torch.cumsum((u < p).to(torch.int32), dim=1) > 0).to(x_static.device, non_blocking=True)
    where = mask.view(B, T, *([1] * (x_static.dim() - 2)))
    return torch.where(where, x_event, x_static), mask
