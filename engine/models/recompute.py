"""BatchNorm → spiking neuron as one autograd node that keeps less for the backward pass (opt-in).

Why. In a conv → BN → neuron block the backward pass keeps three full-size tensors per element: the
BN input (conv output), the neuron's pre-spike potentials ``h`` and the spikes (kept by the next conv
or pool). ``h`` is a function of the BN input, the per-step batch statistics and the neuron state, so
this node keeps only the BN input and the statistics, and in the backward pass recomputes the BN
output (the same kernel on the same input: the same numbers) and the neuron's forward loop, then runs
the neuron's hand-written backward through time and the BN kernel's own backward. A third less
activation memory per block, for one extra BN forward and one extra neuron forward per block in the
backward pass (activation checkpointing of the cheap elementwise part only; the convolutions are never
recomputed).

Used by the models' blocks through :func:`norm_spike` when ``recompute`` is set on the model
(:func:`set_recompute`, ``create_model(..., recompute=True)``); it applies in multi-step training
with the fused or Triton neuron backend and an ``engine.surrogates`` surrogate, and falls back to
``node(bn(x))`` everywhere else (evaluation, the step-by-step path, the autograd backend, which the
run configuration refuses to combine with ``recompute``). Triton neurons go one step further where
their kernels run: :func:`norm_spike` hands the block to ``engine.models.norm_fire``, which normalises
inside the neuron kernel and, with ``recompute``, reruns only that kernel in the backward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from engine.compile_boundary import boundary
from engine.fused_neurons import NeuronDynamics, initial_state, loops_for
from engine.models.layers import BatchNorm2d
from engine.neurons import FUSED_BACKENDS, BaseNeuron
from engine.surrogates import Surrogate

__all__ = ["norm_spike", "set_recompute", "uses_recompute"]


class _NormSpike(torch.autograd.Function):
    """Inputs: ``x, bn.weight, bn.bias, k, v0``; outputs ``(spikes, v)`` as the fused neuron's."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        k: Tensor | None,
        v0: Tensor | None,
        bn: BatchNorm2d,
        dynamics: NeuronDynamics,
    ) -> tuple[Tensor, Tensor]:
        y, stats = bn.per_step_forward(x, keep_stats=True)
        assert stats is not None
        ctx.forward_loop, ctx.backward_loop = loops_for(dynamics, y)
        spikes, v, _, _ = ctx.forward_loop(y, v0, k, dynamics, keep_h=False, keep_diff=False)
        ctx.bn, ctx.dynamics, ctx.has_v0, ctx.calls = bn, dynamics, v0 is not None, len(stats)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, k, v0, *(t for pair in stats for t in pair))
        return spikes, v

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes: Tensor | None, grad_v: Tensor | None):  # type: ignore[override]
        x, k, v0, *flat = ctx.saved_tensors
        stats = [(flat[2 * i], flat[2 * i + 1]) for i in range(ctx.calls)]
        d: NeuronDynamics = ctx.dynamics
        needs = ctx.needs_input_grad
        y, _ = ctx.bn.per_step_forward(x, update=False)  # the same kernel on the same input
        keep_diff = d.kind == "mul" and needs[3]
        _, _, h_seq, diff_seq = ctx.forward_loop(y, v0, k, d, keep_h=True, keep_diff=keep_diff)
        del y
        grad_y, grad_v0, grad_k = ctx.backward_loop(h_seq, k, diff_seq, grad_spikes, grad_v, d, ctx.has_v0)
        del h_seq, diff_seq
        grad_x, grad_w, grad_b = ctx.bn.per_step_backward(grad_y, x, stats, needs[1] or needs[2])
        return (
            grad_x if needs[0] else None,
            grad_w if needs[1] else None,
            grad_b if needs[2] else None,
            grad_k if needs[3] else None,
            grad_v0 if needs[4] else None,
            None,
            None,
        )


def _fused_block(bn: nn.Module, node: BaseNeuron, x: Tensor) -> bool:
    """A multi-step BatchNorm → spiking neuron whose time loop runs as one node (fused or Triton)."""
    return (
        isinstance(bn, BatchNorm2d)
        and bn.step_mode == "m"
        and node.step_mode == "m"
        and node.backend in FUSED_BACKENDS
        and node.spiking
        and isinstance(node.surrogate, Surrogate)
        and x.dim() == 5
    )


def _applies(bn: nn.Module, node: BaseNeuron, x: Tensor) -> bool:
    return (
        getattr(bn, "recompute", False)
        and _fused_block(bn, node, x)
        and bn.training
        and torch.is_grad_enabled()
    )


def _fuses_norm(bn: nn.Module, node: BaseNeuron, x: Tensor) -> bool:
    """Whether ``node(bn(x))`` runs as one Triton kernel (``engine.models.norm_fire``)."""
    if node.backend != "triton" or not _fused_block(bn, node, x):
        return False
    from engine.triton_neurons import can_run  # noqa: PLC0415 — only for Triton neurons

    return can_run(x, node.fused_dynamics())


def norm_spike(bn: nn.Module, node: BaseNeuron, x: Tensor) -> Tensor:
    """``node(bn(x))``, recomputing the BN output and the potentials in the backward pass when the
    BatchNorm has ``recompute`` set (module docstring); for Triton neurons the BatchNorm's
    normalisation runs inside the neuron kernel (``engine.models.norm_fire``)."""
    if _fuses_norm(bn, node, x):
        return _norm_fire_node(bn, node, x)
    if not _applies(bn, node, x):
        return node(bn(x))
    return _norm_spike_node(bn, node, x)


@boundary
def _norm_spike_node(bn: BatchNorm2d, node: BaseNeuron, x: Tensor) -> Tensor:
    v0 = initial_state(x, node.mem)
    spikes, v = _NormSpike.apply(x, bn.weight, bn.bias, node.fused_factor(), v0, bn, node.fused_dynamics())
    node.keep_fused_state(v)
    return spikes


@boundary
def _norm_fire_node(bn: BatchNorm2d, node: BaseNeuron, x: Tensor) -> Tensor:
    from engine.models.norm_fire import norm_fire  # noqa: PLC0415 — only for Triton neurons

    return norm_fire(bn, node, x)


def set_recompute(model: nn.Module, enabled: bool) -> nn.Module:
    """Turn the BN → neuron recomputation on or off for every BatchNorm of ``model``; returns it."""
    for sub in model.modules():
        if isinstance(sub, BatchNorm2d):
            sub.recompute = bool(enabled)
    return model


def uses_recompute(model: nn.Module) -> bool:
    """Whether any BatchNorm of ``model`` recomputes (see :func:`set_recompute`)."""
    return any(getattr(sub, "recompute", False) for sub in model.modules() if isinstance(sub, BatchNorm2d))
