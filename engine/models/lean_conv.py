"""A convolution that keeps its spike input for the backward pass as 1 byte per element (opt-in).

Why. A convolution's weight gradient needs its input, so autograd keeps the input tensor alive until
the backward pass. When that input is a spiking layer's output it is all zeros and ones, yet it is kept
in the compute dtype: 4 bytes per element in float32, 2 in bfloat16 — in the VGG-SNN, every second
convolution's input. This node keeps ``spikes.to(uint8)`` instead and widens it back in the backward
pass, where the same ``aten.convolution_backward`` call autograd would make runs on exactly the same
numbers (0 and 1 are exact in every dtype): outputs and gradients are bit-identical to the plain
convolution (tested), for a quarter (float32) or half (bfloat16) of that saved tensor.

Which convolutions. Only those whose input is a spiking neuron's output, marked ``spike_input`` by the
model families (``engine.models.vgg``, ``engine.models.resnet``) where they build them; an average pool
in between (VGG after each pool, SCNN) makes the input fractional, and those stay as they are.
:func:`set_lean_spikes` turns it on for a model, and refuses a model whose neurons do not spike (the
ANN twin's ReLU feeds real numbers).

Under autocast the input and weight are cast to the autocast dtype first, outside this node, as
autocast would cast them for ``F.conv2d``: the weight's cast stays in the graph, so its gradient
arrives in the parameter's dtype as usual. One difference: autocast casts a weight once per autocast
region and sums the gradients of all its uses in bfloat16 before widening them, this cast is per use,
so a weight used twice (a transfer model's two streams) gets its two gradients summed in float32. The
outputs stay bit-identical and those weight gradients agree to bfloat16 rounding (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["lean_conv2d", "set_lean_spikes", "uses_lean_spikes"]


class _SpikeConv2d(torch.autograd.Function):
    """``F.conv2d`` that saves its 0/1 input as ``uint8``; inputs ``spikes, weight, bias`` + settings."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        spikes: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> Tensor:
        out = F.conv2d(spikes, weight, bias, stride, padding, dilation, groups)
        ctx.settings = (stride, padding, dilation, groups)
        ctx.dtype, ctx.has_bias = spikes.dtype, bias is not None
        ctx.save_for_backward(spikes.to(torch.uint8), weight)  # keeps the input's memory format
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        packed, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.settings
        needs = ctx.needs_input_grad
        grad_in, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            packed.to(ctx.dtype),
            weight,
            [weight.shape[0]] if ctx.has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            [needs[0], needs[1], ctx.has_bias and needs[2]],
        )
        return grad_in, grad_w, grad_b, None, None, None, None


def lean_conv2d(
    spikes: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> Tensor:
    """``F.conv2d(spikes, weight, bias, ...)`` keeping ``spikes`` (zeros and ones) as 1 byte for the
    backward pass (module docstring). Autocast is applied here, as ``F.conv2d`` would apply it."""
    device_type = spikes.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        spikes, weight = spikes.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(device_type, enabled=False):
            return _SpikeConv2d.apply(spikes, weight, bias, stride, padding, dilation, groups)
    return _SpikeConv2d.apply(spikes, weight, bias, stride, padding, dilation, groups)


def _spike_convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and getattr(m, "spike_input", False)]


def set_lean_spikes(model: nn.Module, enabled: bool) -> nn.Module:
    """Save spike inputs as 1 byte in every ``spike_input`` convolution of ``model`` (or stop); returns it.

    Raises ``ValueError`` for a model whose neurons do not spike (``neuron: relu``).
    """
    from engine.neurons import BaseNeuron  # noqa: PLC0415 — engine.neurons does not import models

    if enabled and not all(n.spiking for n in model.modules() if isinstance(n, BaseNeuron)):
        raise ValueError("lean_spikes needs spiking neurons: a ReLU twin feeds its convolutions real numbers")
    for conv in _spike_convs(model):
        conv.lean = bool(enabled)
    return model


def uses_lean_spikes(model: nn.Module) -> bool:
    """Whether any convolution of ``model`` saves its spikes as 1 byte."""
    return any(getattr(conv, "lean", False) for conv in _spike_convs(model))
