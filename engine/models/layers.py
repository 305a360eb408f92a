"""Layers that run in either step mode, keeping the plain ``torch.nn`` parameter names.

Every model can run in two ways, selected by ``step_mode`` (SpikingJelly's convention):

* ``"s"`` — the reference, step by step: the model loops ``for t in range(T)`` and runs the whole
  layer stack on frame ``t`` (``[B, ...]``), exactly the original BrainCog order. Each BatchNorm is
  called T times per pass, so its batch statistics are per step and its running statistics are updated
  T times.
* ``"m"`` — the fast path, layer by layer: the stack runs once on ``[T, B, ...]``. Stateless layers
  (conv, linear, pooling, flatten) fold time into the batch and run as one large call;
  :class:`BatchNorm2d` computes one set of batch statistics per step and applies the T
  running-statistics updates in closed form; neurons loop over T on their elementwise state only
  (``engine.fused_neurons``). The result equals the reference path (tested for every model: outputs,
  features, gradients and running statistics).

Memory layout of the fast path. Logically every tensor is ``[T, B, ...]``; physically the model picks
one of two layouts at its input (``SpikingModel.channels_last``, :func:`set_memory_format`; ``auto``
per device in ``engine.models.factory``), and every layer keeps the layout it receives — a stateless
layer folds time into the batch as a view and returns the same layout, a neuron allocates its outputs
with its input's strides:

* ``"contiguous"`` — *batch-major* NCHW frames, the view ``x.transpose(0, 1)`` of the ``(B, T, ...)``
  input (no copy). It makes the per-step BatchNorm one fused kernel call: ``[B, T, C, H, W]`` viewed
  as ``[B, T·C, H, W]`` has one "channel" per (step, channel) pair, whose batch statistics over
  ``(B, H, W)`` are exactly step t's (profiled on CPU: 3× faster than the ``var_mean`` reduction of a
  time-major tensor it replaced).
* ``"channels_last"`` — *time-major* NHWC frames (``[T, B, H, W, C]`` in memory; conv weights
  channels-last too). Convolutions run NHWC kernels (oneDNN: 1.5–2× faster on the CPU; cuDNN: a
  1.1–1.35× faster H200 training step); BatchNorm runs the fused kernel once per step on contiguous
  NHWC frames.

Any other layout works as well (it is folded time-major, copying where it must).

The classes subclass their ``torch.nn`` counterparts, so state-dict keys (``conv.weight``,
``bn.running_var``) stay those of the original network and checkpoints map one-to-one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.lean_conv import lean_conv2d
from engine.neurons import BACKENDS, STEP_MODES, BaseNeuron

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Flatten",
    "Linear",
    "StepModule",
    "fold_time",
    "is_time_major",
    "MEMORY_FORMATS",
    "set_memory_format",
    "set_neuron_backend",
    "time_major_channels_last",
    "set_step_mode",
    "unfold_time",
]


class StepModule:
    """Mixin: a module with a ``step_mode`` of ``"s"`` or ``"m"`` (see the module docstring)."""

    step_mode: str = "s"


def is_time_major(x: Tensor) -> bool:
    """False when ``x [T, B, ...]`` is the batch-major view of a ``[B, T, ...]`` tensor (its T and B
    dimensions merge as ``[B·T]``), true otherwise (see the module docstring). Frames may be stored
    either NCHW or channels-last; only how T and B are laid out matters here."""
    T, B = x.shape[0], x.shape[1]
    batch_major = x.stride(1) == T * x.stride(0) and x.stride(0) != B * x.stride(1)
    return not batch_major


def time_major_channels_last(x: Tensor) -> Tensor:
    """``[T, B, C, H, W]`` stored as ``[T, B, H, W, C]``: time-major, channels-last frames."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def fold_time(x: Tensor) -> tuple[Tensor, bool]:
    """``[T, B, ...]`` → ``([N, ...], time_major)`` with N = T·B: a view for either layout (a copy
    only for a tensor that is neither)."""
    if is_time_major(x):
        return x.flatten(0, 1), True
    return x.transpose(0, 1).flatten(0, 1), False


def unfold_time(y: Tensor, T: int, B: int, time_major: bool) -> Tensor:
    """Inverse of :func:`fold_time`: ``[N, ...]`` → ``[T, B, ...]`` in the layout it was folded from."""
    if time_major:
        return y.unflatten(0, (T, B))
    return y.unflatten(0, (B, T)).transpose(0, 1)


class _FoldTime(StepModule):
    """Stateless layer: in multi-step mode, fold time into the batch, run once, unfold."""

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            folded, time_major = fold_time(x)
            out = super().forward(folded)  # type: ignore[misc]
            return unfold_time(out, x.shape[0], x.shape[1], time_major)
        return super().forward(x)  # type: ignore[misc]


class Conv2d(_FoldTime, nn.Conv2d):
    """``nn.Conv2d`` that folds time into the batch in multi-step mode.

    A strided 1×1 convolution of a channels-last input on the CPU subsamples first and convolves with
    stride 1 (the same numbers): oneDNN's NHWC 1×1 backward-weights kernel for strides > 1 writes past
    its workspace when the input has fewer channels than its block (oneDNN issue 6035: a segfault
    here for ResNet18's first downsample at width 0.125, wrong weight gradients on other CPUs).
    """

    spike_input: bool = False
    """This convolution's input is a spiking neuron's output (set by the model families)."""
    lean: bool = False
    """Keep the spike input as 1 byte for the backward pass (``engine.models.lean_conv``)."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        stride = self.stride
        if (
            input.device.type == "cpu"
            and self.kernel_size == (1, 1)
            and self.stride != (1, 1)
            and self.padding == (0, 0)
            and self.padding_mode == "zeros"
            and input.dim() == 4
            and input.is_contiguous(memory_format=torch.channels_last)
            and not input.is_contiguous()
        ):
            input, stride = input[:, :, :: self.stride[0], :: self.stride[1]], (1, 1)
        if self.lean and self.padding_mode == "zeros" and torch.is_grad_enabled():
            return lean_conv2d(input, weight, bias, stride, self.padding, self.dilation, self.groups)  # type: ignore[arg-type]
        if stride != self.stride:
            return F.conv2d(input, weight, bias, 1, 0, 1, self.groups)
        return super()._conv_forward(input, weight, bias)


class Linear(_FoldTime, nn.Linear):
    """``nn.Linear`` that folds time into the batch in multi-step mode."""


class AvgPool2d(_FoldTime, nn.AvgPool2d):
    """``nn.AvgPool2d`` that folds time into the batch in multi-step mode."""


class AdaptiveAvgPool2d(_FoldTime, nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` that folds time into the batch in multi-step mode.

    Global pooling (output 1×1, ResNet's head) is a mean over the last two dimensions, for any number
    of leading dimensions: the same numbers, and unlike CUDA's adaptive-pooling backward (atomic adds)
    deterministic, so a seeded GPU run repeats exactly.
    """

    def forward(self, x: Tensor) -> Tensor:
        if _pair_of(self.output_size) == (1, 1):
            return x.mean(dim=(-2, -1), keepdim=True)
        return super().forward(x)


def _pair_of(size: int | tuple[int | None, ...]) -> tuple[int | None, ...]:
    return (size, size) if isinstance(size, int) else tuple(size)


class Flatten(_FoldTime, nn.Flatten):
    """``nn.Flatten`` (from dim 1 of a frame) that folds time into the batch in multi-step mode."""


class BatchNorm2d(StepModule, nn.BatchNorm2d):
    """BatchNorm with per-time-step statistics in multi-step mode.

    Training, multi-step: input ``[T, B, C, H, W]``; step ``t`` is normalised with the mean and biased
    variance of ``x[t]`` over ``(B, H, W)``, exactly as T separate ``nn.BatchNorm2d`` calls would do,
    with the same fused kernel: once on the ``[B, T·C, H, W]`` view of a batch-major input (weight and
    bias repeated T times), or once per step on a time-major one. The kernel writes each step's batch
    mean and unbiased variance into scratch running buffers (momentum 1), and the real running
    statistics receive the T momentum updates of T sequential calls in closed form::

        r_T = (1 − m)^T · r_0 + Σ_t m (1 − m)^(T−1−t) · s_t      (s_t: mean, or unbiased variance)

    and ``num_batches_tracked`` grows by T. Dtypes follow ``nn.BatchNorm2d`` (under bf16 autocast a
    bf16 input gives a bf16 output, statistics in float32), as in the reference path.

    Evaluation, multi-step: the running statistics are the same for every step, so the call folds time
    into the batch.
    """

    recompute: bool = False
    """Let :func:`engine.models.recompute.norm_spike` recompute this layer's output in the backward pass."""

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode != "m":
            return super().forward(x)
        if x.dim() != 5:
            raise ValueError(f"multi-step BatchNorm2d expects [T, B, C, H, W], got shape {tuple(x.shape)}")
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            folded, time_major = fold_time(x)
            return unfold_time(super().forward(folded), x.shape[0], x.shape[1], time_major)
        return self.per_step_forward(x)[0]

    def _single_kernel(self, x: Tensor) -> bool:
        """Whether the steps share one kernel call: batch-major NCHW storage (module docstring)."""
        return not is_time_major(x) and x.transpose(0, 1).is_contiguous()

    def per_step_forward(
        self, x: Tensor, keep_stats: bool = False, update: bool = True
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]] | None]:
        """Training-mode forward with per-step statistics → ``(out, stats)``.

        ``keep_stats``: run ``torch.native_batch_norm`` and return its saved ``(mean, invstd)`` per
        kernel call, for a hand-written backward (:meth:`per_step_backward`); otherwise
        ``F.batch_norm`` (which may pick cuDNN) and ``stats = None``. ``update=False`` leaves the
        running statistics alone (a recomputation).
        """
        T, B, C, H, W = x.shape
        if B * H * W <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape[1:])}"
            )
        update = update and self.training and self.track_running_stats and self.running_mean is not None
        # scratch running buffers: with momentum 1 the kernel leaves step t's batch mean and unbiased
        # variance in them, exactly what the reference's t-th call mixes into its running statistics
        stats_dtype = self.running_mean.dtype if self.running_mean is not None else torch.float32
        step_mean = x.new_zeros((T, C), dtype=stats_dtype) if update else None
        step_var = x.new_ones((T, C), dtype=stats_dtype) if update else None
        stats: list[tuple[Tensor, Tensor]] | None = [] if keep_stats else None

        def norm(inp: Tensor, mean: Tensor | None, var: Tensor | None, w: Tensor | None, b: Tensor | None):
            if stats is None:
                return F.batch_norm(inp, mean, var, w, b, True, 1.0, self.eps)
            out, save_mean, save_invstd = torch.native_batch_norm(inp, w, b, mean, var, True, 1.0, self.eps)
            stats.append((save_mean, save_invstd))
            return out

        if self._single_kernel(x):
            per_channel = x.transpose(0, 1).reshape(B, T * C, H, W)  # a view of batch-major storage
            out = norm(
                per_channel,
                None if step_mean is None else step_mean.view(T * C),
                None if step_var is None else step_var.view(T * C),
                self.weight.repeat(T) if self.weight is not None else None,
                self.bias.repeat(T) if self.bias is not None else None,
            )
            out = out.view(B, T, C, H, W).transpose(0, 1)
        else:
            # one call per step on the frames as they are stored (channels-last included). The steps
            # are split off the folded batch and joined back along it: the frames' memory format
            # survives, and the backward is one concatenation (indexing x[t] would make autograd
            # zero-fill a full-size gradient for every step)
            steps = x.flatten(0, 1).split(B)
            out = torch.cat(
                [
                    norm(
                        steps[t],
                        None if step_mean is None else step_mean[t],
                        None if step_var is None else step_var[t],
                        self.weight,
                        self.bias,
                    )
                    for t in range(T)
                ]
            ).unflatten(0, (T, B))
        if update:
            assert step_mean is not None and step_var is not None
            self._update_running_stats(step_mean, step_var, T)
        return out, stats

    def per_step_backward(
        self, grad_out: Tensor, x: Tensor, stats: list[tuple[Tensor, Tensor]], needs_affine: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(grad_x, grad_weight, grad_bias)`` of :meth:`per_step_forward` with ``keep_stats``."""
        T, B, C, H, W = x.shape
        affine = needs_affine and self.weight is not None
        mask = [True, affine, affine]
        backward = torch.ops.aten.native_batch_norm_backward
        if self._single_kernel(x):
            ((mean, invstd),) = stats
            g = grad_out.transpose(0, 1).reshape(B, T * C, H, W)
            weight = self.weight.repeat(T) if self.weight is not None else None
            per_channel = x.transpose(0, 1).reshape(B, T * C, H, W)
            gx, gw, gb = backward(g, per_channel, weight, None, None, mean, invstd, True, self.eps, mask)
            gx = gx.view(B, T, C, H, W).transpose(0, 1)
            return gx, (gw.view(T, C).sum(0) if affine else None), (gb.view(T, C).sum(0) if affine else None)
        steps, grads = x.flatten(0, 1).split(B), grad_out.flatten(0, 1).split(B)
        results = [
            backward(grads[t], steps[t], self.weight, None, None, *stats[t], True, self.eps, mask)
            for t in range(T)
        ]
        gx = torch.cat([r[0] for r in results]).unflatten(0, (T, B))
        if not affine:
            return gx, None, None
        return gx, torch.stack([r[1] for r in results]).sum(0), torch.stack([r[2] for r in results]).sum(0)

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


MEMORY_FORMATS = ("contiguous", "channels_last")


def set_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """Run ``model``'s multi-step frames ``"contiguous"`` (NCHW, batch-major) or ``"channels_last"``
    (NHWC, time-major) and store its conv weights to match; returns it."""
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
    channels_last = memory_format == "channels_last"
    model.channels_last = channels_last
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return model


def set_neuron_backend(module: nn.Module, backend: str) -> nn.Module:
    """Switch every neuron inside ``module`` to the ``"fused"``, ``"triton"`` or ``"autograd"``
    multi-step backend (``engine.neurons``)."""
    if backend not in BACKENDS:
        raise ValueError(f"neuron backend must be one of {BACKENDS}, got {backend!r}")
    for sub in module.modules():
        if isinstance(sub, BaseNeuron):
            sub.backend = backend
    return module
