"""Surrogate-gradient spike functions, picked by name.

A spiking neuron fires when its membrane potential crosses the threshold: ``s = H(m − V_th)``. The step
function has zero gradient almost everywhere, so training replaces its derivative in the backward pass
by a smooth or box-shaped "surrogate" while the forward pass stays the exact, strict Heaviside
(``x > 0``, so a potential sitting exactly on the threshold does not fire). Each surrogate below is one
``torch.autograd.Function`` whose backward is written out in closed form (spec §1.2), so the gradient
is exactly the published formula and not whatever autograd makes of an approximation.

BrainCog's SigmoidGrad alone fires at ``x ≥ 0``; here every surrogate uses the same strict step, which
differs only for a potential exactly on the threshold.

α is a fixed number, not a parameter: the original LIF hard-codes ``alpha=2.0, requires_grad=False``
and the paper never trains it.

=============  =========================================================  =================
name           dS/dx                                                      original class
=============  =========================================================  =================
``qgate``      ``α − α²|x|`` for ``|x| ≤ 1/α``, else 0 (a triangle)        QGateGrad
``backei_gate````1`` for ``|x| < 0.5``, else 0 (α ignored)                  BackEIGateGrad
``gate``       ``1`` for ``|x| < 1/α``, else 0                              GateGrad
``atan``       ``α / (2 (1 + (π/2 · α · x)²))``                              AtanGrad
``sigmoid``    ``α · σ(αx) · (1 − σ(αx))``                                  SigmoidGrad
=============  =========================================================  =================
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from engine.registry import Registry

__all__ = ["SURROGATES", "Surrogate", "create_surrogate"]

SURROGATES: Registry[type[Surrogate]] = Registry("surrogate")


def _heaviside(x: Tensor) -> Tensor:
    """Strict step: 1 where ``x > 0``; a potential exactly at threshold does not fire."""
    return (x > 0).to(x.dtype)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``grad_output · surrogate'(x)`` backward.

    The derivative is computed in the backward pass from the saved ``x`` (rather than precomputed in the
    forward pass as the original did) so that a forward pass without gradients stores nothing.
    """

    @staticmethod
    def forward(ctx, x: Tensor, derivative, alpha: float) -> Tensor:  # type: ignore[override]
        ctx.derivative = derivative
        ctx.alpha = alpha
        if x.requires_grad:
            ctx.save_for_backward(x)
        return _heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.derivative(x, ctx.alpha).mul_(grad_output), None, None


class Surrogate(nn.Module):
    """A spike function ``x ↦ H(x)`` with a surrogate derivative; ``x`` is ``m − V_th``.

    Subclasses define :meth:`derivative`, the backward formula, as a static function of ``(x, alpha)``.
    """

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"surrogate alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return _SpikeFunction.apply(x, self.derivative, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@SURROGATES.register("qgate")
class QGate(Surrogate):
    """Triangle ``α − α²|x|`` on ``|x| ≤ 1/α`` (the papers' N-Caltech101 and CEP-DVS runs).

    ``α − α²|x|`` is ≤ 0 exactly where ``|x| ≥ 1/α``, so clamping at 0 is the piecewise formula in
    fewer kernels.
    """

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return x.abs().mul_(-alpha * alpha).add_(alpha).clamp_(min=0.0)


@SURROGATES.register("backei_gate")
class BackEIGate(Surrogate):
    """Rectangle of height 1 on ``|x| < 0.5``, whatever α is (the N-Omniglot run)."""

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (x.abs() < 0.5).to(x.dtype)


@SURROGATES.register("gate")
class Gate(Surrogate):
    """Rectangle of height 1 on ``|x| < 1/α`` (the original ``--act-fun`` default)."""

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (x.abs() < 1.0 / alpha).to(x.dtype)


@SURROGATES.register("atan")
class Atan(Surrogate):
    """``α / (2 (1 + (π/2 · α · x)²))``, the derivative of ``arctan(π/2 · α · x)/π + 1/2``."""

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return alpha / (2.0 * (1.0 + (math.pi / 2.0 * alpha * x).square()))


@SURROGATES.register("sigmoid")
class Sigmoid(Surrogate):
    """``α σ(αx)(1 − σ(αx))``, the derivative of ``σ(αx)`` (BrainCog's SigmoidGrad)."""

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        s = torch.sigmoid(alpha * x)
        return (1.0 - s).mul_(s).mul_(alpha)


def create_surrogate(name: str, alpha: float = 2.0) -> Surrogate:
    """Build the surrogate called ``name``; an unknown name raises ``ValueError`` listing valid names."""
    return SURROGATES.get(name)(alpha=alpha)
