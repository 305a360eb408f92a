"""Layers that run in either step mode, keeping the plain ``torch.nn`` parameter names.

Every model can run in two ways, selected by ``step_mode`` (SpikingJelly's convention):

* ``"s"`` — the reference, step by step: the model loops ``for t in range(T)`` and runs the whole
  layer stack on frame ``t`` (``[B, ...]``), exactly the original BrainCog order. Each BatchNorm is
  called T times per pass, so its batch statistics are per step and its running statistics are updated
  T times.
* ``"m"`` — the fast path, layer by layer: the stack runs once on ``[T, B, ...]``. Stateless layers
  (conv, linear, pooling, flatten) fold time into the batch (``[T·B, ...]``) and run as one large call;
  :class:`BatchNorm2d` computes one set of batch statistics per step on the ``[T, B, ...]`` view and
  applies the T running-statistics updates in closed form; neurons loop over T on their elementwise
  state only. The result equals the reference path (tested for every model: outputs, features,
  gradients and running statistics).

The classes subclass their ``torch.nn`` counterparts, so state-dict keys (``conv.weight``,
``bn.running_var``) stay those of the original network and checkpoints map one-to-one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.neurons import STEP_MODES, BaseNeuron

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Flatten",
    "Linear",
    "StepModule",
    "set_step_mode",
]


class StepModule:
    """Mixin: a module with a ``step_mode`` of ``"s"`` or ``"m"`` (see the module docstring)."""

    step_mode: str = "s"


class _FoldTime(StepModule):
    """Stateless layer: in multi-step mode, fold ``[T, B, ...]`` into ``[T·B, ...]`` and back."""

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            out = super().forward(x.flatten(0, 1))  # type: ignore[misc]
            return out.unflatten(0, x.shape[:2])
        return super().forward(x)  # type: ignore[misc]


class Conv2d(_FoldTime, nn.Conv2d):
    """``nn.Conv2d`` that folds time into the batch in multi-step mode."""


class Linear(_FoldTime, nn.Linear):
    """``nn.Linear`` that folds time into the batch in multi-step mode."""


class AvgPool2d(_FoldTime, nn.AvgPool2d):
    """``nn.AvgPool2d`` that folds time into the batch in multi-step mode."""


class AdaptiveAvgPool2d(_FoldTime, nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` that folds time into the batch in multi-step mode."""


class Flatten(_FoldTime, nn.Flatten):
    """``nn.Flatten`` (from dim 1 of a frame) that folds time into the batch in multi-step mode."""


class BatchNorm2d(StepModule, nn.BatchNorm2d):
    """BatchNorm with per-time-step statistics in multi-step mode.

    Training, multi-step: input ``[T, B, C, H, W]``; step ``t`` is normalised with the mean and biased
    variance of ``x[t]`` over ``(B, H, W)``, exactly as T separate ``nn.BatchNorm2d`` calls would do.
    The running statistics receive the T momentum updates of those calls in closed form::

        r_T = (1 − m)^T · r_0 + Σ_t m (1 − m)^(T−1−t) · s_t      (s_t: mean, or unbiased variance)

    and ``num_batches_tracked`` grows by T. The normalisation is written as ``x · scale_t + shift_t``
    from ``torch.var_mean``, so autograd saves only the input and per-channel vectors, as the fused
    kernel does. Statistics are computed in at least float32 (under bf16 autocast too).

    Evaluation, multi-step: the running statistics are the same for every step, so the call folds time
    into the batch and uses the fused kernel.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode != "m":
            return super().forward(x)
        if x.dim() != 5:
            raise ValueError(f"multi-step BatchNorm2d expects [T, B, C, H, W], got shape {tuple(x.shape)}")
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return self._per_step_batch_norm(x)

    def _per_step_batch_norm(self, x: Tensor) -> Tensor:
        T, B, C, H, W = x.shape
        n = B * H * W
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape[1:])}"
            )
        stats_dtype = torch.promote_types(x.dtype, torch.float32)
        var, mean = torch.var_mean(x.to(stats_dtype), dim=(1, 3, 4), correction=0)  # [T, C] each
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
            shift = self.bias - mean * scale
        else:
            shift = -mean * scale
        out = torch.addcmul(shift[:, None, :, None, None], x.to(stats_dtype), scale[:, None, :, None, None])

        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * (n / (n - 1)), T)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor, T: int) -> None:
        """Apply the T momentum updates of T sequential calls, without any host round trip."""
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        rdtype = self.running_mean.dtype
        if self.momentum is None:
            # Cumulative moving average: the factor 1/count changes every update, so apply them in turn.
            for t in range(T):
                self.num_batches_tracked.add_(1)
                factor = self.num_batches_tracked.to(rdtype).reciprocal()
                self.running_mean.lerp_(mean[t].to(rdtype), factor)
                self.running_var.lerp_(unbiased_var[t].to(rdtype), factor)
            return
        m = float(self.momentum)
        # step t's statistic survives the T − 1 − t later updates: weight m (1 − m)^(T−1−t)
        ages = torch.arange(T - 1, -1, -1, device=mean.device, dtype=torch.float64)
        weights = (m * (1.0 - m) ** ages).to(mean.dtype)[:, None]
        decay = (1.0 - m) ** T
        self.running_mean.mul_(decay).add_((weights * mean).sum(0).to(rdtype))
        self.running_var.mul_(decay).add_((weights * unbiased_var).sum(0).to(rdtype))
        self.num_batches_tracked.add_(T)


def set_step_mode(module: nn.Module, mode: str) -> nn.Module:
    """Switch every layer and neuron inside ``module`` to step mode ``"s"`` or ``"m"``; returns it."""
    if mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {mode!r}")
    for sub in module.modules():
        if isinstance(sub, StepModule | BaseNeuron):
            sub.step_mode = mode
    return module
