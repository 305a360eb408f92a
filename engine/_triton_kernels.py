"""The Triton kernels of the multi-step neuron; imported only by ``engine.triton_neurons`` on first use.

This module imports ``triton`` at its top, so nothing else imports it at module level: the engine
imports and runs without Triton (``engine.triton_neurons`` says why and what calls these).

Every element is one lane; one program walks its lanes through all T steps with the membrane in
registers, reading ``x_t`` and writing ``s_t`` (and what the backward needs) once per step. The
element at linear index ``i`` of a step lives at ``(i // inner) · stride_o + i % inner + t · stride_t``
(``engine.triton_neurons.StepGeometry``), which covers both of the models' layouts without a copy.

Arithmetic follows the plain-torch neuron operation for operation, so spikes and potentials are
bit-identical to it:

* float32 and float64 inputs compute in their own dtype, with correctly rounded division (:func:`_div`);
* bfloat16 inputs compute in float32 and round every intermediate to bfloat16 (round to nearest even,
  by bits: :func:`_round`), which is what torch's bfloat16 kernels do per operation.

The backward accumulates in the compute dtype (float32 for bfloat16) and rounds once at the store:
gradients agree with the torch path within the dtype's tolerance, not bit for bit.
"""

from __future__ import annotations

import triton
import triton.language as tl

# How h is formed (engine.fused_neurons.CHARGE_KINDS): 0 LIF (div), 1 IF (add), 2 PLIF (mul)
DIV: tl.constexpr = tl.constexpr(0)
ADD: tl.constexpr = tl.constexpr(1)
MUL: tl.constexpr = tl.constexpr(2)


@triton.jit
def _round(x, ROUND: tl.constexpr):
    """Round float32 ``x`` to the nearest bfloat16 (ties to even), kept as float32, when ``ROUND``.

    Done on the bits because Triton's interpreter converts float32 → bfloat16 by truncation (and its
    "rtne" mode rounds ties up); on a GPU this is the same number ``cvt.rn.bf16.f32`` gives.
    """
    if ROUND:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        bits = (bits >> 16) << 16
        rounded = bits.to(tl.float32, bitcast=True)
        return tl.where(x != x, x, rounded)
    return x


@triton.jit
def _load(ptr, off, mask, BF16: tl.constexpr):
    """Load as the compute dtype; a bfloat16 tensor is read as its bits and widened exactly (Triton's
    interpreter mis-converts some bfloat16 arrays)."""
    if BF16:
        bits = tl.load(ptr.to(tl.pointer_type(tl.uint16)) + off, mask=mask, other=0)
        return (bits.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return tl.load(ptr + off, mask=mask, other=0.0)


@triton.jit
def _store(ptr, off, value, mask, BF16: tl.constexpr):
    """Store a compute-dtype value; into a bfloat16 tensor it is rounded to nearest even first."""
    if BF16:
        bits = _round(value, True).to(tl.uint32, bitcast=True) >> 16
        tl.store(ptr.to(tl.pointer_type(tl.uint16)) + off, bits.to(tl.uint16), mask=mask)
    else:
        tl.store(ptr + off, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _div(a, b):
    """IEEE division, correctly rounded: ``div_rn`` for float32 (Triton's ``/`` is approximate there);
    float64's ``/`` already is."""
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    return a / b


@triton.jit
def _surrogate_derivative(z, alpha, SURROGATE: tl.constexpr):
    """dS/dz of ``engine.surrogates``: 0 qgate, 1 backei_gate, 2 gate, 3 atan, 4 sigmoid."""
    if SURROGATE == 0:
        return tl.maximum(tl.abs(z) * (-alpha * alpha) + alpha, 0.0)
    elif SURROGATE == 1:
        return tl.where(tl.abs(z) < 0.5, 1.0, 0.0).to(z.dtype)
    elif SURROGATE == 2:
        return tl.where(tl.abs(z) < 1.0 / alpha, 1.0, 0.0).to(z.dtype)
    elif SURROGATE == 3:
        a = 1.5707963267948966 * alpha * z
        return alpha / (2.0 * (1.0 + a * a))
    else:
        sig = 1.0 / (1.0 + tl.exp(-(alpha * z)))
        return (1.0 - sig) * sig * alpha


@triton.jit
def neuron_forward(
    x_ptr,
    v0_ptr,
    k_ptr,
    const_ptr,
    spike_ptr,
    h_ptr,
    v_ptr,
    diff_ptr,
    mean_ptr,
    invstd_ptr,
    weight_ptr,
    bias_ptr,
    T,
    N,
    inner,
    stride_t,
    stride_o,
    C,
    channel_stride,
    KIND: tl.constexpr,
    HAS_V0: tl.constexpr,
    KEEP_H: tl.constexpr,
    RECORD: tl.constexpr,
    KEEP_DIFF: tl.constexpr,
    ROUND: tl.constexpr,
    NORM: tl.constexpr,
    STEP_STATS: tl.constexpr,
    AFFINE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """T steps of charge → fire → hard reset for BLOCK lanes.

    Writes ``spike[t]`` every step, ``h[t]`` (pre-spike potential) when ``KEEP_H``, ``v[t]`` (post-reset
    potential) when ``RECORD``, else the last ``v`` into ``v_ptr`` (a step-shaped buffer indexed by
    ``i``), and PLIF's ``x_t − v_{t−1}`` into ``diff[t]`` when ``KEEP_DIFF``.
    ``const_ptr`` holds ``[v_th, tau]`` in the compute dtype; ``k_ptr`` PLIF's σ(w).

    ``NORM``: the input is a BatchNorm's input; each lane normalises it first, ``(x − mean)·invstd``
    then ``·weight + bias`` when ``AFFINE``, with the statistics of its channel ``(i // channel_stride)
    % C`` and, when ``STEP_STATS`` (training), of its step (``[T, C]``; else ``[C]``, the running ones).
    """
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < N
    base = (i // inner) * stride_o + i % inner
    step64 = tl.zeros([BLOCK], dtype=tl.int64) + stride_t  # 64-bit offsets: T·stride_t may pass 2³¹
    v_th = tl.load(const_ptr)
    tau = tl.load(const_ptr + 1)
    if KIND == MUL:
        k = tl.load(k_ptr).to(v_th.dtype)
    if NORM:
        channel = (i // channel_stride) % C
        if AFFINE:
            scale = tl.load(weight_ptr + channel, mask=mask, other=1.0).to(v_th.dtype)
            shift = tl.load(bias_ptr + channel, mask=mask, other=0.0).to(v_th.dtype)
    if HAS_V0:  # noqa: SIM108 — Triton compiles statements, not conditional expressions, per constexpr
        v = _load(v0_ptr, i, mask, ROUND).to(v_th.dtype)
    else:
        v = tl.zeros([BLOCK], dtype=v_th.dtype)
    for t in range(T):
        off = base + t * step64
        x = _load(x_ptr, off, mask, ROUND).to(v_th.dtype)
        if NORM:
            stat = t * C + channel if STEP_STATS else channel
            mean = tl.load(mean_ptr + stat, mask=mask, other=0.0).to(v_th.dtype)
            invstd = tl.load(invstd_ptr + stat, mask=mask, other=1.0).to(v_th.dtype)
            x = (x - mean) * invstd
            if AFFINE:
                x = x * scale + shift
            x = _round(x, ROUND)  # the BatchNorm's output, in the input's dtype
        if KIND == ADD:
            h = _round(v + x, ROUND)
        else:
            diff = _round(x - v, ROUND)
            if KEEP_DIFF:
                _store(diff_ptr, off, diff, mask, ROUND)
            if KIND == DIV:  # noqa: SIM108
                step = _round(_div(diff, tau), ROUND)
            else:
                step = _round(diff * k, ROUND)
            h = _round(v + step, ROUND)
        fired = h > v_th
        _store(spike_ptr, off, fired.to(v_th.dtype), mask, ROUND)
        if KEEP_H:
            _store(h_ptr, off, h, mask, ROUND)
        v = tl.where(fired, 0.0, h)
        if RECORD:
            _store(v_ptr, off, v, mask, ROUND)
    if not RECORD:
        _store(v_ptr, i, v, mask, ROUND)


@triton.jit
def neuron_backward(
    h_ptr,
    grad_spike_ptr,
    grad_v_ptr,
    diff_ptr,
    k_ptr,
    const_ptr,
    grad_x_ptr,
    grad_v0_ptr,
    grad_k_ptr,
    T,
    N,
    inner,
    stride_t,
    stride_o,
    KIND: tl.constexpr,
    SURROGATE: tl.constexpr,
    HAS_GRAD_SPIKE: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    RECORD: tl.constexpr,
    HAS_V0: tl.constexpr,
    HAS_DIFF: tl.constexpr,
    BF16: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Backward through time, t = T−1 … 0 (``engine.fused_neurons`` writes out the formulas).

    ``grad_v`` is ``[T, ...]`` when ``RECORD``, else the gradient of the last potential (step-shaped,
    indexed by ``i``). Writes ``grad_x[t]``, the gradient of the state before the sequence when
    ``HAS_V0``, and this program's share of PLIF's ∂L/∂k into ``grad_k[program]`` when ``HAS_DIFF``.
    ``const_ptr`` holds ``[v_th, tau, alpha]`` in the compute dtype.
    """
    pid = tl.program_id(0)
    i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < N
    base = (i // inner) * stride_o + i % inner
    step64 = tl.zeros([BLOCK], dtype=tl.int64) + stride_t
    v_th = tl.load(const_ptr)
    tau = tl.load(const_ptr + 1)
    alpha = tl.load(const_ptr + 2)
    if KIND == MUL:
        k = tl.load(k_ptr).to(v_th.dtype)
    if HAS_GRAD_V and not RECORD:
        carry = _load(grad_v_ptr, i, mask, BF16).to(v_th.dtype)
    else:
        carry = tl.zeros([BLOCK], dtype=v_th.dtype)
    acc = tl.zeros([BLOCK], dtype=v_th.dtype)
    for back in range(T):
        t = T - 1 - back
        off = base + t * step64
        h = _load(h_ptr, off, mask, BF16).to(v_th.dtype)
        g_v = carry
        if HAS_GRAD_V and RECORD:
            g_v = g_v + _load(grad_v_ptr, off, mask, BF16).to(v_th.dtype)
        # the reset is detached: only a potential that did not fire passes its gradient on
        grad_h = tl.where(h > v_th, 0.0, g_v)
        if HAS_GRAD_SPIKE:
            g_s = _load(grad_spike_ptr, off, mask, BF16).to(v_th.dtype)
            grad_h = grad_h + g_s * _surrogate_derivative(h - v_th, alpha, SURROGATE)
        if KIND == DIV:
            gx = _div(grad_h, tau)
            carry = grad_h - gx
        elif KIND == ADD:
            gx = grad_h
            carry = grad_h
        else:
            gx = grad_h * k
            carry = grad_h - gx
        if HAS_DIFF:
            acc += grad_h * _load(diff_ptr, off, mask, BF16).to(v_th.dtype)
        _store(grad_x_ptr, off, gx, mask, BF16)
    if HAS_V0:
        _store(grad_v0_ptr, i, carry, mask, BF16)
    if HAS_DIFF:
        tl.store(grad_k_ptr + pid, tl.sum(acc, axis=0))
