"""Loss landscapes of a trained network (Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018).

The weights θ of a checkpoint are moved along one or two directions, θ + x·d₁ (+ y·d₂), and the event
branch is evaluated at every grid point (:func:`engine.training.evaluation.evaluate`: BatchNorm in eval
mode, the neuron state reset for every batch), giving the loss and accuracy surface around θ.

Directions (the authors' ``main_visual_losslandscape.py``, after Li et al.'s ``net_plotter``):

- *Random, filter-normalised*: a Gaussian direction, seeded, in which each filter — each slice along
  the first axis of a weight of two or more dimensions (a conv output channel, a linear output unit) —
  is rescaled to the norm of the matching filter of the weights, ``d_f ← d_f · ‖θ_f‖ / ‖d_f‖``, so that
  the picture does not depend on each filter's scale (which batch normalisation makes arbitrary).
  One-dimensional parameters (biases, BatchNorm scales and shifts, the learnable coefficients c_t) get
  a zero direction by default (the original's ``--xignore biasbn``), or their own values when included.
- *Interpolation*: ``d = θ_B − θ_A`` between two checkpoints of the same model (x = 0 is A, x = 1 is B).

The same seed gives the same directions: they are drawn from a ``torch.Generator`` seeded per direction
(``seed``, ``seed + 1``), in parameter order, on the CPU, whatever device then evaluates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.training.evaluation import evaluate

__all__ = [
    "Direction",
    "evaluate_points",
    "filter_normalise",
    "interpolation_direction",
    "random_direction",
]

Direction = dict[str, Tensor]
"""Parameter name → a tensor of the parameter's shape."""


def filter_normalise(direction: Tensor, weight: Tensor, ignore_1d: bool = True) -> Tensor:
    """Li et al.'s filter normalisation of one parameter's direction (see the module docstring)."""
    if direction.dim() <= 1:
        return torch.zeros_like(direction) if ignore_1d else weight.detach().clone()
    d = direction.reshape(direction.shape[0], -1)
    w = weight.detach().reshape(weight.shape[0], -1)
    scale = w.norm(dim=1) / (d.norm(dim=1) + 1e-10)
    return (d * scale[:, None]).reshape(direction.shape)


def random_direction(model: nn.Module, seed: int, ignore_1d: bool = True) -> Direction:
    """A seeded Gaussian direction over ``model``'s parameters, filter-normalised."""
    generator = torch.Generator().manual_seed(seed)
    out: Direction = {}
    for name, param in model.named_parameters():
        weight = param.detach().float().cpu()
        gaussian = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
        out[name] = filter_normalise(gaussian, weight, ignore_1d)
    return out


def interpolation_direction(model_a: nn.Module, model_b: nn.Module) -> Direction:
    """``θ_B − θ_A`` for every parameter (the two models must have the same parameters)."""
    b = dict(model_b.named_parameters())
    missing = [name for name, _ in model_a.named_parameters() if name not in b]
    if missing:
        raise ValueError(f"the two checkpoints do not have the same parameters (e.g. {missing[0]})")
    return {
        name: (b[name].detach().float().cpu() - p.detach().float().cpu())
        for name, p in model_a.named_parameters()
    }


@dataclass(frozen=True)
class PointResult:
    coords: tuple[float, ...]
    loss: float
    top1: float
    top5: float


@torch.no_grad()
def evaluate_points(
    model: nn.Module,
    directions: Sequence[Direction],
    points: Iterable[tuple[float, ...]],
    batches: Sequence[tuple[Tensor, Tensor]],
    device: torch.device,
    precision: str = "fp32",
) -> list[PointResult]:
    """Evaluate ``model`` at θ + Σ_k c_k·d_k for every point ``c`` (one coordinate per direction).

    ``batches`` are ``(frames, labels)`` evaluated at every point; the model's weights are restored
    afterwards. At the origin the weights are exactly θ, so the result equals a plain evaluation.
    """
    params = dict(model.named_parameters())
    origin = {name: p.detach().clone() for name, p in params.items()}
    moved = [
        {name: d[name].to(device=p.device, dtype=p.dtype) for name, p in params.items()} for d in directions
    ]
    results = []
    try:
        for coords in points:
            if len(coords) != len(directions):
                raise ValueError(
                    f"point {coords} has {len(coords)} coordinates for {len(directions)} directions"
                )
            for name, p in params.items():
                value = origin[name].clone()
                for c, d in zip(coords, moved, strict=True):
                    if c != 0.0:
                        value.add_(d[name], alpha=float(c))
                p.copy_(value)
            metrics = evaluate(model, batches, device, precision)
            results.append(
                PointResult(
                    tuple(float(c) for c in coords),
                    metrics["test_loss"],
                    metrics["test_top1"],
                    metrics["test_top5"],
                )
            )
    finally:
        for name, p in params.items():
            p.copy_(origin[name])
    return results
