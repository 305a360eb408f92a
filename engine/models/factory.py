"""The model registry and the one way to build a model: :func:`create_model`.

Modelled on timm's ``create_model``: every architecture registers itself under a short name, configs
and sweeps name models by that string, and an unknown name (model, neuron or surrogate) fails at once
with the list of valid names instead of deep inside a run.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

import torch

from engine.models.layers import MEMORY_FORMATS, set_memory_format, set_neuron_backend, set_step_mode
from engine.models.lean_conv import set_lean_spikes
from engine.models.recompute import set_recompute
from engine.neuron_spec import BACKEND_CHOICES, DEFAULT_NEURON, NeuronSpec
from engine.neurons import BACKENDS, NEURONS, STEP_MODES
from engine.registry import Registry
from engine.surrogates import SURROGATES

if TYPE_CHECKING:
    from engine.models.base import SpikingModel

__all__ = [
    "AUTO_MEMORY_FORMAT",
    "AUTO_STEP_MODE",
    "MODELS",
    "create_model",
    "list_models",
    "resolve_memory_format",
    "resolve_neuron_backend",
    "resolve_step_mode",
]

MODELS: Registry[type[SpikingModel]] = Registry("model")

AUTO_STEP_MODE: dict[str, str] = {"cpu": "m", "cuda": "m"}
"""What ``step_mode="auto"`` runs per device type (any other type gets ``"m"``); see
:func:`resolve_step_mode` for the measurements behind it."""

AUTO_MEMORY_FORMAT: dict[str, str] = {"cpu": "channels_last", "cuda": "channels_last"}
"""The frame layout ``memory_format="auto"`` gives the multi-step path per device type (any other type
gets ``"contiguous"``); the step-by-step path always runs contiguous."""


def _device_type(device: str | torch.device | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def resolve_step_mode(step_mode: str, device: str | torch.device | None = None) -> str:
    """``"m"`` or ``"s"`` for ``step_mode`` (``"auto"``, ``"m"`` or ``"s"``) on ``device``.

    ``device=None`` means where a model would run by default: CUDA when available, else the CPU.
    ``auto`` follows :data:`AUTO_STEP_MODE`, set from same-process measurements of a full training
    step (both streams, CKA + TET loss, backward, AdamW; ``bench/bench_train.py``,
    ``bench/bench_engine.py``, ``bench/gpu_check.py``):

    * CPU (2 shared cores, torch 2.13): the layer-by-layer path used to be 1.25–1.6× *slower* than step
      by step (BatchNorm statistics reduced with ``var_mean`` over a strided ``[T, B, C, H, W]`` view,
      ~8 autograd nodes and a saved mask per neuron step, stacking copies). With fused neurons, one
      BatchNorm kernel per layer and channels-last frames it is 1.1–1.2× (quick preset) to 1.4–1.6×
      (VGG width 0.25, 48 px, T = 8–10) faster than step by step.
    * CUDA (H200, torch 2.11, ``bench/results/gpu_check_h200.json``): Transfer VGG-SNN width 1, T = 10,
      B = 120: step by step 283 ms/iteration (fp32), layer by layer with fused neurons and
      channels-last frames 221 ms (1.28×; bf16: 144 ms, 1.42× over bf16 step by step); Transfer
      ResNet18, T = 6, B = 120: 256 → 171 ms (1.50×; bf16 204 → 113 ms, 1.81×). Peak memory 7 % (fp32)
      to 13 % (bf16) lower.
    """
    if step_mode in STEP_MODES:
        return step_mode
    if step_mode != "auto":
        raise ValueError(f"step_mode must be 'auto' or one of {STEP_MODES}, got {step_mode!r}")
    return AUTO_STEP_MODE.get(_device_type(device), "m")


def resolve_neuron_backend(backend: str, device: str | torch.device | None = None) -> str:
    """``"fused"``, ``"autograd"`` or ``"triton"`` for ``backend`` on ``device``.

    ``auto``: ``"triton"`` on a CUDA device with Triton installed (``engine.triton_neurons``), else
    ``"fused"``. A CPU tensor never gets the kernels from ``auto``: Triton's interpreter, which runs them
    on a CPU, exists for tests and is hundreds of times slower than the torch loops.
    """
    if backend in BACKENDS:
        return backend
    if backend != "auto":
        raise ValueError(f"neuron_backend must be one of {BACKEND_CHOICES}, got {backend!r}")
    from engine.triton_neurons import triton_importable  # noqa: PLC0415

    return "triton" if _device_type(device) == "cuda" and triton_importable() else "fused"


def resolve_memory_format(
    memory_format: str, step_mode: str, device: str | torch.device | None = None
) -> str:
    """``"contiguous"`` or ``"channels_last"`` for the resolved ``step_mode`` on ``device``.

    ``auto``: channels-last frames on the CPU, where oneDNN's NHWC convolutions ran 1.5–2× faster than
    NCHW ones at these sizes (the convolutions are ~60 % of a CPU step; whole step 1.2× faster), and on
    CUDA, where cuDNN's NHWC kernels made the H200 training step 1.1–1.2× (fp32) and 1.25–1.35× (bf16)
    faster at the same peak memory; :data:`AUTO_MEMORY_FORMAT` holds the choice per device type. The
    step-by-step path gains nothing from it (measured slower on the CPU), so it always gets
    ``"contiguous"``.
    """
    if memory_format in MEMORY_FORMATS:
        return memory_format
    if memory_format != "auto":
        raise ValueError(f"memory_format must be 'auto' or one of {MEMORY_FORMATS}, got {memory_format!r}")
    if step_mode != "m":
        return "contiguous"
    return AUTO_MEMORY_FORMAT.get(_device_type(device), "contiguous")


def create_model(
    name: str,
    *,
    num_classes: int,
    T: int,
    width: float = 1.0,
    neuron: NeuronSpec | str = DEFAULT_NEURON,
    input_size: int | None = None,
    step_mode: str = "m",
    neuron_backend: str = "fused",
    memory_format: str = "auto",
    recompute: bool = False,
    lean_spikes: bool = False,
    device: str | torch.device | None = None,
    **neuron_fields: Any,
) -> SpikingModel:
    """Build the registered model ``name``.

    Args:
        name: a registry name (:func:`list_models`).
        num_classes: K, the number of logits per step.
        T: time steps; inputs must be ``(B, T, 2, H, W)`` and transfer models own T coefficients.
        width: channel multiplier (1.0 = the published network; e.g. 0.125 for tests and smoke runs).
        neuron: every neuron of the model (:class:`~engine.neuron_spec.NeuronSpec`: kind, τ, V_th,
            surrogate and its α), or a neuron kind's name (``lif``, ``if``, ``plif``, ``relu``) with
            the other fields at their defaults.
        input_size: side of the square input; ``None`` means the model's ``default_input_size``
            (48 for VGG and ResNet, 28 for SCNN). VGG and SCNN heads are sized from it.
        step_mode: ``"m"`` (fast, layer by layer; default), ``"s"`` (the original step-by-step
            order; the reference the fast path is tested against) or ``"auto"`` (the faster of the two
            on ``device``, :func:`resolve_step_mode`).
        neuron_backend: how multi-step neurons run their time loop: ``"fused"`` (one autograd node,
            hand-written backward through time; default), ``"triton"`` (the same node as Triton
            kernels, ``engine.triton_neurons``), ``"autograd"`` (the plain-torch reference) or
            ``"auto"`` (:func:`resolve_neuron_backend`).
        memory_format: how the multi-step path stores its frames: ``"contiguous"`` (NCHW,
            batch-major), ``"channels_last"`` (NHWC, time-major; conv weights too) or ``"auto"``
            (:func:`resolve_memory_format`). Same numbers either way.
        recompute: keep a third less activation memory per conv → BN → neuron block by recomputing
            the BN output and the membrane potentials in the backward pass
            (``engine.models.recompute``; multi-step training with fused or Triton neurons only).
        lean_spikes: convolutions fed by spikes save them as 1 byte for the backward pass
            (``engine.models.lean_conv``; spiking neurons only).
        device: the device the model will run on, consulted by the ``"auto"`` choices only; the model
            is built on the CPU either way. ``None``: CUDA when available, else the CPU.
        **neuron_fields: shorthand for fields of the neuron spec: ``tau=3.0`` is
            ``neuron=NeuronSpec.of(neuron, tau=3.0)``.

    Example:
        >>> model = create_model("transfer_vgg_snn", num_classes=101, T=10, width=0.25)
        >>> out = model(x_static, x_event)        # TransferOutput, each field [T, B, ...]
        >>> plif = create_model("scnn", num_classes=10, T=4, neuron=NeuronSpec("plif", tau=3.0))
    """
    cls = MODELS.get(name)
    spec = NeuronSpec.of(neuron, **neuron_fields)
    NEURONS.get(spec.kind)
    SURROGATES.get(spec.surrogate)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    backend = resolve_neuron_backend(neuron_backend, device)
    if recompute and backend == "autograd":
        raise ValueError("recompute=True needs the fused or triton neuron backend, not 'autograd'")
    mode = resolve_step_mode(step_mode, device)
    model = cls(num_classes=num_classes, T=T, width=width, neuron=spec, input_size=input_size)
    set_neuron_backend(model, backend)
    set_step_mode(model, mode)
    set_memory_format(model, resolve_memory_format(memory_format, mode, device))
    set_recompute(model, recompute)
    set_lean_spikes(model, lean_spikes)
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters with shell wildcards (``"transfer_*"``)."""
    names = MODELS.names()
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]
