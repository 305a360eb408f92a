"""The fused multi-step neuron: the whole time loop as one autograd node with a hand-written BPTT.

Why. Run through autograd, T steps of integrate → fire → reset build ~8 graph nodes per step, save a
float tensor and a mask per step, and stack the spikes (and potentials) with two extra copies; with
the BatchNorm reduction it replaced, this made the layer-by-layer path slower than step by step on a
CPU (fused: 1.15–1.3× faster than the autograd loop in a whole training step, on CPU and on an H200).
SpikingJelly's fast backends solve it the same way as here: run the loop in ``forward`` without a
graph, keep one ``[T, ...]`` tensor, and write the backward through time by hand.

Forward, step t (``v`` is the post-reset potential, ``v_{-1}`` the state before the sequence)::

    h_t = v_{t−1} + (x_t − v_{t−1}) / τ        LIF   ("div", τ)
    h_t = v_{t−1} + x_t                         IF    ("add")
    h_t = v_{t−1} + (x_t − v_{t−1}) · k         PLIF  ("mul", k = σ(w), a tensor)
    s_t = H(h_t − V_th)                         strict ">"
    v_t = h_t masked to 0 where s_t = 1         hard reset, detached

Every operation is the one the plain-torch neuron (``engine.neurons``, backend ``"autograd"``) runs, in
the same order, so the spikes and potentials are bit-identical to it — with one deliberate exception:
the reset ``masked_fill(h, s, 0)`` is computed as ``h − h·s`` (``addcmul``), equal for every finite
``h`` (``h·s`` is exactly ``h`` or 0) but one fast kernel instead of a comparison, a bool→float copy
and a ``where`` that the CPU runs about 15× slower than arithmetic. Only an infinite potential differs
(NaN instead of 0 or −∞), and by then the run has diverged anyway.

Backward, from t = T−1 down to 0, with ``g_s``/``g_v`` the gradients arriving at ``s_t``/``v_t`` (the
latter from ``mem_seq`` and from step t+1)::

    ∂L/∂h_t = g_s · σ'(h_t − V_th) + g_v · (1 − s_t)      σ': the surrogate's derivative
    LIF:  ∂L/∂x_t = ∂L/∂h_t / τ,   ∂L/∂v_{t−1} += ∂L/∂h_t − ∂L/∂x_t
    IF:   ∂L/∂x_t = ∂L/∂h_t,       ∂L/∂v_{t−1} += ∂L/∂h_t
    PLIF: ∂L/∂x_t = ∂L/∂h_t · k,   ∂L/∂v_{t−1} += ∂L/∂h_t − ∂L/∂x_t,   ∂L/∂k += Σ ∂L/∂h_t · (x_t − v_{t−1})

Saved for backward: ``h [T, ...]`` only (the spikes and the reset mask are ``h > V_th``); PLIF also
keeps ``x_t − v_{t−1}`` when its ``w`` is trained. The autograd reference saves ``h − V_th`` plus a
one-byte mask per step.

Layout. The time loop indexes dimension 0 and allocates every ``[T, ...]`` buffer with
``torch.empty_like(x_seq)``, which keeps ``x_seq``'s strides: batch-major NCHW or time-major
channels-last inputs (the models' two fast layouts, ``engine.models.layers``) give spikes and
potentials in the same layout without any copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "CHARGE_KINDS",
    "KERNELS",
    "NeuronDynamics",
    "backward_loop",
    "forward_loop",
    "fused_multi_step",
    "initial_state",
    "loops_for",
]

CHARGE_KINDS = ("div", "add", "mul")
"""How ``h`` is formed from ``v`` and ``x``: LIF divides by τ, IF adds, PLIF multiplies by σ(w)."""

Derivative = Callable[[Tensor, float], Tensor]


def _charge(kind: str, factor: float | Tensor | None, v: Tensor | None, x: Tensor, out: Tensor) -> Tensor:
    """``h = v + (x − v)/τ`` (div) | ``v + x`` (add) | ``v + (x − v)·k`` (mul) into ``out``.

    ``v is None`` is the fresh state 0.0: the reference computes ``0.0 + (x − 0.0)/τ``, which is ``x/τ``
    exactly, so the additions of zero are skipped.
    """
    if kind == "add":
        return out.copy_(x) if v is None else torch.add(v, x, out=out)
    diff = x if v is None else torch.sub(x, v, out=out)
    if kind == "div":
        torch.div(diff, factor, out=out)
    else:
        torch.mul(diff, factor, out=out)
    return out if v is None else out.add_(v)


@dataclass(frozen=True)
class NeuronDynamics:
    """Everything the loops need besides tensors: the charge, the threshold and the surrogate."""

    kind: str
    """``"div"`` (LIF), ``"add"`` (IF) or ``"mul"`` (PLIF); see :data:`CHARGE_KINDS`."""
    tau: float
    v_th: float
    derivative: Derivative
    alpha: float
    record: bool
    """Return every step's post-reset potential ``[T, ...]``, not only the last one."""
    kernel: str = "torch"
    """Who runs the loops: ``"torch"`` (:func:`forward_loop` / :func:`backward_loop` here) or
    ``"triton"`` (``engine.triton_neurons``, where it can run this input; see :func:`loops_for`)."""


def forward_loop(
    x_seq: Tensor, v0: Tensor | None, k: Tensor | None, d: NeuronDynamics, keep_h: bool, keep_diff: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The T steps without a graph → ``(spikes, v, h_seq or None, diff_seq or None)``.

    ``keep_h`` keeps every pre-spike potential (what the backward needs); ``keep_diff`` keeps PLIF's
    ``x_t − v_{t−1}`` (for the gradient of ``k``).
    """
    factor: float | Tensor | None = d.tau if d.kind == "div" else k
    spikes = torch.empty_like(x_seq)
    h_seq = torch.empty_like(x_seq) if keep_h else None
    v_seq = torch.empty_like(x_seq) if d.record else None
    diff_seq = torch.empty_like(x_seq) if keep_diff else None
    h_buffer = None if keep_h else torch.empty_like(x_seq[0])
    v = v0
    for t in range(x_seq.shape[0]):
        x = x_seq[t]
        h = h_seq[t] if h_seq is not None else h_buffer
        if diff_seq is not None:  # PLIF with a trained w: keep x_t − v_{t−1} for ∂L/∂k
            if v is None:
                diff_seq[t].copy_(x)
            else:
                torch.sub(x, v, out=diff_seq[t])
            torch.mul(diff_seq[t], factor, out=h)
            if v is not None:
                h.add_(v)
        else:
            _charge(d.kind, factor, v, x, h)
        s_t = torch.gt(h, d.v_th, out=spikes[t])
        # v = h − h·s: exactly the masked fill for finite h (h·s is h or 0), in one fast kernel
        if v_seq is not None:
            v = torch.addcmul(h, h, s_t, value=-1.0, out=v_seq[t])
        else:
            v = torch.addcmul(h, h, s_t, value=-1.0)
    return spikes, (v_seq if v_seq is not None else v), h_seq, diff_seq


def backward_loop(
    h_seq: Tensor,
    k: Tensor | None,
    diff_seq: Tensor | None,
    grad_spikes: Tensor | None,
    grad_v: Tensor | None,
    d: NeuronDynamics,
    has_v0: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Backward through time (module docstring) → ``(grad_x, grad_v0 or None, grad_k or None)``.

    ``grad_v`` is the gradient of the ``v`` output (``[T, ...]`` when recording, else of the last
    potential); ``None`` for an output that received no gradient.
    """
    kind, tau, v_th = d.kind, d.tau, d.v_th
    grad_x = torch.empty_like(h_seq)
    fired = torch.empty_like(h_seq[0])
    grad_k: Tensor | None = None  # Σ_t Σ ∂L/∂h_t · (x_t − v_{t−1}), PLIF only
    # gradient reaching v_t from later steps (and from the caller when only v_{T−1} is returned)
    carry: Tensor | None = None if d.record else grad_v
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        grad_h = None
        if grad_spikes is not None:
            grad_h = d.derivative(h - v_th, d.alpha).mul_(grad_spikes[t])
        g_v = grad_v[t] if d.record and grad_v is not None else None
        if carry is not None:
            g_v = carry if g_v is None else g_v + carry
        if g_v is not None:
            # the reset is detached: g_v · (1 − s_t), written g_v − g_v·s_t (exact, see forward)
            through_reset = torch.addcmul(g_v, g_v, torch.gt(h, v_th, out=fired), value=-1.0)
            grad_h = through_reset if grad_h is None else grad_h.add_(through_reset)
        if grad_h is None:
            grad_h = torch.zeros_like(h)
        gx = grad_x[t]
        if kind == "div":
            torch.div(grad_h, tau, out=gx)
        elif kind == "mul":
            torch.mul(grad_h, k, out=gx)
        else:
            gx.copy_(grad_h)
        if diff_seq is not None:
            term = (grad_h * diff_seq[t]).sum()
            grad_k = term if grad_k is None else grad_k + term
        if t > 0 or has_v0:
            carry = grad_h if kind == "add" else grad_h.sub_(gx)
    grad_v0 = carry if has_v0 else None
    if grad_k is not None:
        assert k is not None
        grad_k = grad_k.to(k.dtype).reshape(k.shape)
    return grad_x, grad_v0, grad_k


KERNELS = ("torch", "triton")

Loops = tuple[Callable[..., tuple], Callable[..., tuple]]


def loops_for(d: NeuronDynamics, x: Tensor) -> Loops:
    """``(forward_loop, backward_loop)`` for this neuron and input: the Triton kernels when
    ``d.kernel == "triton"`` and they can run ``x`` (``engine.triton_neurons.can_run``), else the torch
    loops of this module. Both give the same spikes and potentials."""
    if d.kernel == "triton":
        from engine import triton_neurons  # noqa: PLC0415 — torch-only runs never import it

        if triton_neurons.can_run(x, d):
            return triton_neurons.forward_loop, triton_neurons.backward_loop
    return forward_loop, backward_loop


class _MultiStepNeuron(torch.autograd.Function):
    """Inputs: ``x_seq, v0 (tensor or None), k (PLIF's σ(w) or None)``; outputs: ``(spikes, v)``.

    ``v`` is every step's post-reset potential ``[T, ...]`` when ``record`` is true, else only the last
    one ``[...]`` (the state the next call starts from).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x_seq: Tensor, v0: Tensor | None, k: Tensor | None, dynamics: NeuronDynamics
    ) -> tuple[Tensor, Tensor]:
        needs_grad = any(ctx.needs_input_grad[:3])
        keep_diff = dynamics.kind == "mul" and ctx.needs_input_grad[2]
        forward, ctx.backward_loop = loops_for(dynamics, x_seq)
        spikes, v, h_seq, diff_seq = forward(x_seq, v0, k, dynamics, needs_grad, keep_diff)
        ctx.dynamics, ctx.has_v0 = dynamics, v0 is not None
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no zero tensors
        ctx.save_for_backward(h_seq, k, diff_seq)
        return spikes, v

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes: Tensor | None, grad_v: Tensor | None):  # type: ignore[override]
        h_seq, k, diff_seq = ctx.saved_tensors
        grad_x, grad_v0, grad_k = ctx.backward_loop(
            h_seq, k, diff_seq, grad_spikes, grad_v, ctx.dynamics, ctx.has_v0
        )
        needs = ctx.needs_input_grad
        return (grad_x if needs[0] else None), (grad_v0 if needs[1] else None), grad_k, None


def initial_state(x_seq: Tensor, v0: float | Tensor) -> Tensor | None:
    """The state before the sequence as the loops take it: ``None`` for the fresh 0.0, else a tensor."""
    if isinstance(v0, Tensor):
        return v0
    if v0 == 0.0:
        return None
    return torch.full_like(x_seq[0], float(v0))


def fused_multi_step(
    x_seq: Tensor, v0: float | Tensor, dynamics: NeuronDynamics, k: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Run ``x_seq [T, ...]`` through T neuron steps as one autograd node.

    Args:
        x_seq: input currents, time first.
        v0: the state before the sequence: the float ``0.0`` after a reset, or a tensor of ``x_seq[0]``'s
            shape (a previous call's last potential; it receives gradients).
        dynamics: the charge kind, threshold, surrogate and ``record`` (:class:`NeuronDynamics`; a
            neuron's own is ``BaseNeuron.fused_dynamics()``).
        k: PLIF's ``σ(w)`` for ``kind="mul"``; ``None`` otherwise.

    Returns:
        ``(spikes [T, ...], v)``: ``v`` is every step's post-reset potential ``[T, ...]`` when
        ``dynamics.record``, else only the last one.
    """
    if dynamics.kind not in CHARGE_KINDS:
        raise ValueError(f"kind must be one of {CHARGE_KINDS}, got {dynamics.kind!r}")
    if dynamics.kind == "mul" and k is None:
        raise ValueError("kind='mul' (PLIF) needs k = sigmoid(w)")
    if dynamics.kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {dynamics.kernel!r}")
    return _MultiStepNeuron.apply(x_seq, initial_state(x_seq, v0), k, dynamics)
