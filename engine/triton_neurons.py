"""The multi-step neuron as two Triton kernels: all T steps forward in one launch, all T back in one.

Why. The fused backend (``engine.fused_neurons``) already runs the time loop as one autograd node, but
each step is still 4–6 separate torch kernels per layer (charge, compare, reset, stores), each reading
and writing a full tensor: on a GPU the neuron is a long train of small memory-bound launches. Here
each lane keeps its membrane potential in a register for all T steps and touches memory once per step
per tensor: ``x_t`` in, ``s_t`` (and what the backward needs) out. SpikingJelly's CUDA neurons, built
the same way, run 4–12× faster than its plain-torch ones.

Contract. :func:`forward_loop` and :func:`backward_loop` have exactly the signatures and results of
their torch twins in ``engine.fused_neurons``, so the fused autograd node and the BN → neuron
recomputation (``engine.models.recompute``) switch between them per call (:func:`loops_for`). What is
saved for the backward is the same: the pre-spike potential ``h`` in the compute dtype (the spikes and
the reset mask are ``h > V_th``, so they are never stored), plus PLIF's ``x_t − v_{t−1}`` when its
``w`` is trained.

Numbers. Spikes and potentials are bit-identical to the plain-torch neuron in float32, bfloat16 and
float64 (``engine._triton_kernels`` says how); gradients agree within the dtype's tolerance. Tested on
the CPU under Triton's interpreter (``TRITON_INTERPRET=1``), which runs the same kernel source with
NumPy: every neuron kind × surrogate × dtype × layout, and whole models in float64.

When it runs. A tensor on a CUDA device with Triton importable, or any CPU tensor while
``TRITON_INTERPRET=1`` is set; float32, bfloat16 or float64; a surrogate of ``engine.surrogates``.
Anything else (a CPU tensor on a machine without the interpreter, float16, a custom surrogate) runs
the torch loops instead, with the same numbers. ``model.neuron_backend: triton`` itself is refused at
validation where Triton cannot run (:func:`unavailable_reason`).

Layouts. A step's elements sit at ``(i // inner) · stride_o + i % inner`` (:class:`StepGeometry`):
time-major tensors (NCHW or channels-last frames) are one dense block per step (``inner`` = all of it),
and the batch-major view of a ``[B, T, ...]`` tensor is ``B`` blocks of one frame each. Outputs keep the
input's strides, as the torch loops do; any other layout is copied to contiguous first.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from engine.fused_neurons import NeuronDynamics
from engine.surrogates import SURROGATES

__all__ = [
    "KERNEL_DTYPES",
    "Normalisation",
    "SURROGATE_CODES",
    "StepGeometry",
    "backward_loop",
    "can_run",
    "forward_loop",
    "interpreting",
    "triton_importable",
    "unavailable_reason",
]

KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float64)
"""Input dtypes the kernels take; bfloat16 computes in float32, rounding every step as torch does."""

SURROGATE_CODES: dict[str, int] = {"qgate": 0, "backei_gate": 1, "gate": 2, "atan": 3, "sigmoid": 4}
"""Registry name → the kernel's ``SURROGATE`` switch (``engine._triton_kernels._surrogate_derivative``)."""

_DERIVATIVE_CODES = {SURROGATES.get(name).derivative: code for name, code in SURROGATE_CODES.items()}
_KIND_CODES = {"div": 0, "add": 1, "mul": 2}

GPU_BLOCK = 1024
"""Lanes per program on a GPU (4 warps × 8 elements per thread)."""
INTERPRETER_BLOCK = 1 << 16
"""Lanes per program under the interpreter, which runs programs one after another: few, wide ones."""


def interpreting() -> bool:
    """Whether Triton runs its interpreter (kernels on CPU tensors, with NumPy): ``TRITON_INTERPRET=1``."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_importable() -> bool:
    """Whether the ``triton`` package is installed (without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a stub module without a spec
        return False


def unavailable_reason(device: str) -> str | None:
    """Why the Triton neuron cannot run on ``device`` (a run's setting: ``auto``, ``cpu``, ``cuda``,
    ``cuda:N``), or ``None`` if it can."""
    device_type = device.partition(":")[0]
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if not triton_importable():
        return "the triton package is not installed (pip install triton; Linux x86-64 and aarch64 wheels)"
    if interpreting():
        return None
    if device_type != "cuda":
        return f"Triton kernels run on CUDA devices, and this run's device is {device_type!r}"
    if not torch.cuda.is_available():
        return "Triton kernels run on CUDA devices, and torch sees no CUDA device here"
    return None


@functools.cache
def _kernels() -> ModuleType:
    from engine import _triton_kernels  # noqa: PLC0415 — imports triton: only when a kernel runs

    return _triton_kernels


def can_run(x: Tensor, d: NeuronDynamics) -> bool:
    """Whether the kernels take this input and neuron (module docstring, "When it runs")."""
    if x.dtype not in KERNEL_DTYPES or d.derivative not in _DERIVATIVE_CODES or d.kind not in _KIND_CODES:
        return False
    if x.device.type == "cuda":
        return triton_importable()
    return x.device.type == "cpu" and interpreting() and triton_importable()


# --------------------------------------------------------------------------------------------------
# layout
@dataclass(frozen=True)
class StepGeometry:
    """Where step t's element i lives: ``(i // inner) · stride_o + i % inner + t · stride_t``.

    ``step_strides`` are the strides of a dense step-shaped buffer whose element i sits at offset i
    (for the state before the sequence and the last potential).
    """

    n: int
    inner: int
    stride_t: int
    stride_o: int
    step_strides: tuple[int, ...]

    @classmethod
    def of(cls, x: Tensor) -> StepGeometry | None:
        """The geometry of a dense, non-overlapping ``[T, ...]`` tensor; ``None`` for any other."""
        T = x.shape[0]
        n = x[0].numel()
        dims = [d for d in range(x.dim()) if x.shape[d] != 1]
        expected = 1
        for d in sorted(dims, key=lambda d: x.stride(d)):  # dense: each stride is the product below it
            if x.stride(d) != expected:
                return None
            expected *= x.shape[d]
        stride_t = x.stride(0) if T > 1 else n
        inner = 1
        for d in range(1, x.dim()):
            if x.shape[d] != 1 and x.stride(d) < stride_t:
                inner *= x.shape[d]
        stride_o = stride_t * T
        # a step-shaped buffer in the same order: the outer dimensions' strides rescaled to a dense step
        step_strides = tuple(
            s if s < stride_t else s // stride_o * inner for s in (x.stride(d) for d in range(1, x.dim()))
        )
        return cls(n=n, inner=inner, stride_t=stride_t, stride_o=stride_o, step_strides=step_strides)


def _same_strides(t: Tensor, shape: torch.Size, strides: tuple[int, ...]) -> bool:
    return all(size == 1 or t.stride(d) == s for d, (size, s) in enumerate(zip(shape, strides, strict=True)))


def _conform(t: Tensor, like: Tensor) -> Tensor:
    """``t`` laid out as ``like`` (the kernel indexes both with one geometry): itself, or a copy."""
    if _same_strides(t, like.shape, like.stride()):
        return t
    return torch.empty_like(like).copy_(t)


def _step_buffer(x_seq: Tensor, g: StepGeometry, dtype: torch.dtype | None = None) -> Tensor:
    dtype = dtype or x_seq.dtype
    return torch.empty_strided(x_seq.shape[1:], g.step_strides, dtype=dtype, device=x_seq.device)


def _conform_step(t: Tensor, x_seq: Tensor, g: StepGeometry) -> Tensor:
    if _same_strides(t, x_seq.shape[1:], g.step_strides):
        return t
    return _step_buffer(x_seq, g, t.dtype).copy_(t)


# --------------------------------------------------------------------------------------------------
# launches
def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


_CONSTANTS: dict[tuple, Tensor] = {}


def _constants(d: NeuronDynamics, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[v_th, tau, alpha]`` in the compute dtype on ``device``, made once per neuron setting (a tensor
    rather than kernel arguments, which Triton would pass as float32 whatever the dtype)."""
    key = (d.v_th, d.tau, d.alpha, dtype, device)
    found = _CONSTANTS.get(key)
    if found is None:
        # torch compares a bfloat16 tensor with a Python number rounded to bfloat16 (``h > 0.3`` tests
        # against 0.30078125), but divides by one in float32: the kernel takes each as torch does
        v_th = torch.tensor(d.v_th, dtype=dtype).item() if dtype == torch.bfloat16 else d.v_th
        found = torch.tensor([v_th, d.tau, d.alpha], dtype=_compute_dtype(dtype), device=device)
        _CONSTANTS[key] = found
    return found


def _grid(n: int, device: torch.device) -> tuple[int, int]:
    """``(programs, lanes per program)`` for ``n`` lanes."""
    if device.type == "cuda":
        block = GPU_BLOCK
    else:
        block = min(INTERPRETER_BLOCK, 1 << max(0, math.ceil(math.log2(max(n, 1)))))
    return -(-n // block), block


@dataclass(frozen=True)
class Normalisation:
    """A BatchNorm applied to the neuron's input inside the forward kernel (``engine.models.norm_fire``).

    ``mean``/``invstd`` are ``[T, C]`` per-step batch statistics (training) or ``[C]`` running ones
    (evaluation), in float32 (float64 for a float64 input); ``weight``/``bias`` the affine ``[C]`` or
    ``None``. The channel is dimension 2 of ``x_seq [T, B, C, H, W]``.
    """

    mean: Tensor
    invstd: Tensor
    weight: Tensor | None
    bias: Tensor | None


def forward_loop(
    x_seq: Tensor,
    v0: Tensor | None,
    k: Tensor | None,
    d: NeuronDynamics,
    keep_h: bool,
    keep_diff: bool,
    norm: Normalisation | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """``engine.fused_neurons.forward_loop`` in one kernel launch (same arguments and results).

    ``norm``: normalise the input first (:class:`Normalisation`); ``h`` and the rest are then those of
    the normalised input, which is never written to memory.
    """
    g = StepGeometry.of(x_seq)
    if g is None:
        x_seq = x_seq.contiguous()
        g = StepGeometry.of(x_seq)
        assert g is not None
    T = x_seq.shape[0]
    spikes = torch.empty_like(x_seq)
    h_seq = torch.empty_like(x_seq) if keep_h else None
    diff_seq = torch.empty_like(x_seq) if keep_diff else None
    v_out = torch.empty_like(x_seq) if d.record else _step_buffer(x_seq, g)
    if v0 is not None:
        v0 = _conform_step(v0, x_seq, g)
    programs, block = _grid(g.n, x_seq.device)
    _kernels().neuron_forward[(programs,)](
        x_seq,
        v0 if v0 is not None else x_seq,
        k if k is not None else x_seq,
        _constants(d, x_seq.dtype, x_seq.device),
        spikes,
        h_seq if h_seq is not None else spikes,
        v_out,
        diff_seq if diff_seq is not None else spikes,
        norm.mean if norm is not None else spikes,
        norm.invstd if norm is not None else spikes,
        norm.weight if norm is not None and norm.weight is not None else spikes,
        norm.bias if norm is not None and norm.bias is not None else spikes,
        T,
        g.n,
        g.inner,
        g.stride_t,
        g.stride_o,
        x_seq.shape[2] if norm is not None else 1,
        g.step_strides[1] if norm is not None else 1,
        KIND=_KIND_CODES[d.kind],
        HAS_V0=v0 is not None,
        KEEP_H=keep_h,
        RECORD=d.record,
        KEEP_DIFF=keep_diff,
        ROUND=x_seq.dtype == torch.bfloat16,
        NORM=norm is not None,
        STEP_STATS=norm is not None and norm.mean.dim() == 2,
        AFFINE=norm is not None and norm.weight is not None,
        BLOCK=block,
    )
    return spikes, v_out, h_seq, diff_seq


def backward_loop(
    h_seq: Tensor,
    k: Tensor | None,
    diff_seq: Tensor | None,
    grad_spikes: Tensor | None,
    grad_v: Tensor | None,
    d: NeuronDynamics,
    has_v0: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``engine.fused_neurons.backward_loop`` in one kernel launch (same arguments and results)."""
    g = StepGeometry.of(h_seq)
    assert g is not None, "h_seq is allocated by forward_loop with a dense layout"
    T = h_seq.shape[0]
    if grad_spikes is not None:
        grad_spikes = _conform(grad_spikes, h_seq)
    if grad_v is not None:
        grad_v = _conform(grad_v, h_seq) if d.record else _conform_step(grad_v, h_seq, g)
    if diff_seq is not None:
        diff_seq = _conform(diff_seq, h_seq)
    grad_x = torch.empty_like(h_seq)
    grad_v0 = _step_buffer(h_seq, g) if has_v0 else None
    programs, block = _grid(g.n, h_seq.device)
    grad_k_parts = None
    if diff_seq is not None:  # one partial sum of ∂L/∂k per program, added up here
        grad_k_parts = torch.empty(programs, dtype=_compute_dtype(h_seq.dtype), device=h_seq.device)
    _kernels().neuron_backward[(programs,)](
        h_seq,
        grad_spikes if grad_spikes is not None else h_seq,
        grad_v if grad_v is not None else h_seq,
        diff_seq if diff_seq is not None else h_seq,
        k if k is not None else h_seq,
        _constants(d, h_seq.dtype, h_seq.device),
        grad_x,
        grad_v0 if grad_v0 is not None else grad_x,
        grad_k_parts if grad_k_parts is not None else grad_x,
        T,
        g.n,
        g.inner,
        g.stride_t,
        g.stride_o,
        KIND=_KIND_CODES[d.kind],
        SURROGATE=_DERIVATIVE_CODES[d.derivative],
        HAS_GRAD_SPIKE=grad_spikes is not None,
        HAS_GRAD_V=grad_v is not None,
        RECORD=d.record,
        HAS_V0=has_v0,
        HAS_DIFF=diff_seq is not None,
        BF16=h_seq.dtype == torch.bfloat16,
        BLOCK=block,
    )
    grad_k = None
    if grad_k_parts is not None:
        assert k is not None
        grad_k = grad_k_parts.sum().to(k.dtype).reshape(k.shape)
    return grad_x, grad_v0, grad_k
