"""BatchNorm → Triton neuron as one kernel: the normalise, scale and shift run in the neuron's input.

Why. In a conv → BN → neuron block the BatchNorm reads the convolution's output and writes its own
full-size output, which the neuron reads back: two of the elementwise passes the GPU profile is made
of. Here only the statistics are a separate pass (a reduction per step and channel); the neuron kernel
(``engine.triton_neurons``, ``Normalisation``) reads the convolution's output and normalises each
element in registers on its way in, so the BN output is never written. The backward runs the neuron
kernel's backward to ``∂L/∂y`` and the BatchNorm's own backward formula on it.

Saved for the backward: the BN input (which the plain BatchNorm keeps too), the ``[T, C]`` statistics
and ``h`` — or, with ``recompute`` set on the BatchNorm (``engine.models.recompute``), not even ``h``:
the backward reruns the forward kernel to get it, which is one read of the input and one write of
``h`` (the plain recomputation reruns the BatchNorm as well).

Statistics. Training uses per-step batch statistics, as ``engine.models.layers.BatchNorm2d``: the mean
and biased variance of step t over ``(B, H, W)`` from ``torch.batch_norm_stats`` on CUDA (the kernel
``F.batch_norm`` runs without cuDNN) and ``torch.var_mean`` elsewhere, and the running statistics get
the same T momentum updates in closed form. Evaluation uses the running statistics for every step.

Numbers. The normalisation is ``(x − mean) · invstd · weight + bias`` in float32 (float64 for a
float64 input), the BatchNorm kernels' own arithmetic up to rounding order: on the CPU in float64 the
outputs match the unfused model to 1e-12 with identical spikes (tested for every model, under Triton's
interpreter); in bfloat16 a potential within one rounding of the threshold may fire differently.

Used by :func:`engine.models.recompute.norm_spike` for Triton neurons in multi-step mode whenever the
kernels can run the input; anything else takes the unfused path.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from engine.fused_neurons import NeuronDynamics
from engine.models.layers import BatchNorm2d

__all__ = ["norm_fire"]


def _step_statistics(bn: BatchNorm2d, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, invstd, unbiased variance)``, each ``[T, C]`` in the statistics dtype."""
    T, B, C, H, W = x.shape
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if x.device.type == "cuda":
        if bn._single_kernel(x):  # batch-major: [B, T·C, H, W] is a view, one call for all steps
            mean, invstd = torch.batch_norm_stats(x.transpose(0, 1).reshape(B, T * C, H, W), bn.eps)
        else:  # time-major: one call per step on its frames as stored (no copy of x)
            per_step = [torch.batch_norm_stats(x[t], bn.eps) for t in range(T)]
            mean, invstd = torch.stack([m for m, _ in per_step]), torch.stack([s for _, s in per_step])
        mean, invstd = mean.view(T, C).to(dtype), invstd.view(T, C).to(dtype)
        var = invstd.pow(-2).sub_(bn.eps)
    else:
        var, mean = torch.var_mean(x.to(dtype), dim=(1, 3, 4), correction=0)
        invstd = (var + bn.eps).rsqrt()
    n = B * H * W
    return mean, invstd, var * (n / (n - 1))


class _NormFire(torch.autograd.Function):
    """Inputs ``x, bn.weight, bn.bias, k, v0`` + the layer, the neuron's dynamics and ``recompute``;
    outputs ``(spikes, v)`` as the fused neuron's."""

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
        recompute: bool,
    ) -> tuple[Tensor, Tensor]:
        from engine import triton_neurons  # noqa: PLC0415

        use_batch_stats = bn.training or bn.running_mean is None
        if use_batch_stats:
            mean, invstd, unbiased = _step_statistics(bn, x)
            if bn.training and bn.track_running_stats and bn.running_mean is not None:
                bn._update_running_stats(
                    mean.to(bn.running_mean.dtype), unbiased.to(bn.running_mean.dtype), x.shape[0]
                )
        else:
            assert bn.running_mean is not None and bn.running_var is not None
            dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            mean = bn.running_mean.to(dtype)
            invstd = (bn.running_var.to(dtype) + bn.eps).rsqrt()
        norm = triton_neurons.Normalisation(mean, invstd, weight, bias)
        needs_grad = any(ctx.needs_input_grad[:5])
        keep_diff = dynamics.kind == "mul" and ctx.needs_input_grad[3]
        keep_h = needs_grad and not recompute
        spikes, v, h, diff = triton_neurons.forward_loop(
            x, v0, k, dynamics, keep_h, keep_diff and not recompute, norm
        )
        ctx.bn, ctx.dynamics, ctx.has_v0, ctx.batch_stats = bn, dynamics, v0 is not None, use_batch_stats
        ctx.recompute, ctx.keep_diff = recompute, keep_diff
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, weight, bias, k, v0, mean, invstd, h, diff)
        return spikes, v

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes: Tensor | None, grad_v: Tensor | None):  # type: ignore[override]
        from engine import triton_neurons  # noqa: PLC0415

        x, weight, bias, k, v0, mean, invstd, h, diff = ctx.saved_tensors
        d: NeuronDynamics = ctx.dynamics
        if ctx.recompute:  # rerun the forward kernel for h (and PLIF's x − v), writing nothing else
            norm = triton_neurons.Normalisation(mean, invstd, weight, bias)
            _, _, h, diff = triton_neurons.forward_loop(x, v0, k, d, True, ctx.keep_diff, norm)
        grad_y, grad_v0, grad_k = triton_neurons.backward_loop(h, k, diff, grad_spikes, grad_v, d, ctx.has_v0)
        del h, diff
        needs = ctx.needs_input_grad
        grad_x, grad_w, grad_b = _batchnorm_backward(grad_y, x, mean, invstd, weight, ctx.batch_stats)
        return (
            grad_x if needs[0] else None,
            grad_w if needs[1] else None,
            grad_b if needs[2] else None,
            grad_k if needs[3] else None,
            grad_v0 if needs[4] else None,
            None,
            None,
            None,
        )


def _batchnorm_backward(
    grad_y: Tensor, x: Tensor, mean: Tensor, invstd: Tensor, weight: Tensor | None, batch_stats: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """BatchNorm's backward per step and channel: with batch statistics
    ``∂x = w·invstd·(g − mean(g) − x̂·mean(g·x̂))``, with running ones ``∂x = w·invstd·g``;
    ``∂w = Σ g·x̂``, ``∂b = Σ g`` (summed over steps too)."""
    C = x.shape[2]
    shape = (-1, 1, C, 1, 1)
    m, s = mean.reshape(shape), invstd.reshape(shape)
    g = grad_y.to(mean.dtype)
    x_hat = (x.to(mean.dtype) - m) * s
    sum_g = g.sum(dim=(1, 3, 4))  # [T, C]
    sum_gx = (g * x_hat).sum(dim=(1, 3, 4))
    scale = s if weight is None else s * weight.to(mean.dtype).view(1, 1, C, 1, 1)
    if batch_stats:
        n = x.shape[1] * x.shape[3] * x.shape[4]
        grad_x = (g - (sum_g / n).reshape(shape) - x_hat * (sum_gx / n).reshape(shape)) * scale
    else:
        grad_x = g * scale
    grad_w = sum_gx.sum(0).to(weight.dtype) if weight is not None else None
    grad_b = sum_g.sum(0).to(weight.dtype) if weight is not None else None
    return grad_x.to(x.dtype), grad_w, grad_b


def norm_fire(bn: BatchNorm2d, node, x: Tensor) -> Tensor:
    """``node(bn(x))`` as one Triton kernel forward (module docstring); updates ``node``'s state."""
    from engine.fused_neurons import initial_state  # noqa: PLC0415

    v0 = initial_state(x, node.mem)
    spikes, v = _NormFire.apply(
        x, bn.weight, bn.bias, node.fused_factor(), v0, bn, node.fused_dynamics(), bool(bn.recompute)
    )
    node.keep_fused_state(v)
    return spikes
