"""Spiking neurons with declared state and two step modes.

State. A neuron's only state is its membrane potential ``mem`` (plus ``mem_seq`` when it records the
potential of every step). It is declared with :meth:`BaseNeuron.register_memory` together with its
initial value, and :meth:`BaseNeuron.reset` restores every declared memory, so resetting never depends
on scanning modules for ad-hoc attributes. ``mem`` starts as the Python float ``0.0`` (the original's
``v_reset``) and becomes a tensor of the input's shape at the first step.

Dynamics of one step, with ``x`` the input current (spec §1.1)::

    m ← charge(m, x)              LIF: m + (x − m)/τ    IF: m + x    PLIF: m + (x − m)·σ(w)
    s = H(m − V_th)               strict '>' forward, surrogate derivative backward
    m ← m · (1 − s.detach())      hard reset to 0; no gradient through the reset

``mem`` keeps the post-reset value; the VGG and SCNN models use it as their transfer feature.

Step modes (SpikingJelly's convention):

* ``"s"`` (single step, the default for a stand-alone neuron): ``forward(x[B, ...])`` advances one step.
* ``"m"`` (multi step): ``forward(x_seq[T, B, ...])`` runs the T steps in a loop over the elementwise
  state only and returns the spikes ``[T, B, ...]``; with ``record_mem`` the post-reset potential of
  every step is kept in ``mem_seq [T, B, ...]``. The models switch all their layers to ``"m"`` so that
  convolutions and BatchNorm run once over all steps (``engine.models.layers``).

Backends of the multi-step loop (SpikingJelly's convention: one neuron, several backends, the plain-torch
one is the reference):

* ``"fused"`` (default): the T steps run as one autograd node with a hand-written backward through time
  (``engine.fused_neurons``); it saves one ``[T, ...]`` tensor and builds no per-step graph. Spikes and
  potentials are bit-identical to ``"autograd"``, gradients equal up to float rounding.
* ``"triton"``: the fused node with its two loops as Triton kernels, all T steps in one launch each
  (``engine.triton_neurons``): the same spikes and potentials, the same saved tensor. It runs on CUDA
  tensors (and on CPU tensors under ``TRITON_INTERPRET=1``, how the tests check it); on any input the
  kernels do not take it runs the fused torch loops.
* ``"autograd"``: the loop below, differentiated by autograd — the reference the fused path is tested
  against. It is also used whenever the surrogate is not one of ``engine.surrogates``.

The single-step mode always runs the autograd step.

The threshold and the surrogate's α are plain numbers, not parameters (the original stores them as
frozen parameters; they are never trained in the paper).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from engine.compile_boundary import boundary
from engine.fused_neurons import NeuronDynamics, fused_multi_step
from engine.neuron_spec import BACKENDS, DEFAULT_NEURON
from engine.registry import Registry
from engine.surrogates import Surrogate, create_surrogate

__all__ = [
    "BACKENDS",
    "FUSED_BACKENDS",
    "NEURONS",
    "BaseNeuron",
    "IFNode",
    "LIFNode",
    "PLIFNode",
    "create_neuron",
    "reset_neurons",
]

NEURONS: Registry[type[BaseNeuron]] = Registry("neuron")

STEP_MODES = ("s", "m")
FUSED_BACKENDS = ("fused", "triton")
"""Backends that run the time loop as one autograd node (``engine.fused_neurons``)."""
_KERNEL_OF = {"fused": "torch", "triton": "triton"}


class BaseNeuron(nn.Module):
    """Integrate, fire, hard-reset. Subclasses define :meth:`charge`.

    ``spiking`` is false only for the ANN twin's :class:`ReLUNode` (real-valued outputs).

    Args:
        v_th: firing threshold V_th.
        surrogate: surrogate name (``engine.surrogates.SURROGATES``) or a built :class:`Surrogate`.
        alpha: the surrogate's α (ignored when ``surrogate`` is already built).
        step_mode: ``"s"`` or ``"m"`` (module docstring).
        record_mem: in multi-step mode, keep every step's post-reset potential in ``mem_seq``.
        backend: ``"fused"``, ``"triton"`` or ``"autograd"``, how the multi-step loop runs (module
            docstring).
    """

    uses_tau = False
    spiking = True
    fused_kind = ""
    """How the fused backend forms ``h`` from ``v`` and ``x`` (``engine.fused_neurons.CHARGE_KINDS``)."""

    def __init__(
        self,
        v_th: float = DEFAULT_NEURON.v_th,
        surrogate: str | Surrogate = DEFAULT_NEURON.surrogate,
        alpha: float = DEFAULT_NEURON.surrogate_alpha,
        step_mode: str = "s",
        record_mem: bool = False,
        backend: str = "fused",
    ) -> None:
        super().__init__()
        self.v_th = float(v_th)
        self.surrogate = create_surrogate(surrogate, alpha) if isinstance(surrogate, str) else surrogate
        self.step_mode = step_mode
        self.backend = backend
        self.record_mem = record_mem
        self._memories: dict[str, Any] = {}
        self.register_memory("mem", 0.0)
        self.register_memory("mem_seq", None)

    # ----------------------------------------------------------------------------------------------
    # state
    def register_memory(self, name: str, initial: Any) -> None:
        """Declare a state variable and the value :meth:`reset` restores it to."""
        self._memories[name] = initial
        setattr(self, name, initial)

    def reset(self) -> None:
        """Forget the state of the previous input (call between unrelated inputs)."""
        for name, initial in self._memories.items():
            setattr(self, name, initial)

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {mode!r}")
        self._step_mode = mode

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"neuron backend must be one of {BACKENDS}, got {name!r}")
        self._backend = name

    # ----------------------------------------------------------------------------------------------
    # dynamics
    def charge(self, mem: Tensor | float, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _step(self, mem: Tensor | float, x: Tensor) -> tuple[Tensor, Tensor]:
        mem = self.charge(mem, x)
        spike = self.surrogate(mem - self.v_th)
        # m · (1 − s) with s detached, written as a masked fill: autograd keeps a 1-byte mask per
        # element instead of the float tensor (1 − s).
        return spike, mem.masked_fill(spike.detach() > 0, 0.0)

    def single_step_forward(self, x: Tensor) -> Tensor:
        spike, self.mem = self._step(self.mem, x)
        return spike

    def fused_factor(self) -> Tensor | None:
        """The tensor factor of the fused charge (PLIF's σ(w)); ``None`` for LIF and IF."""
        return None

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        if self._backend in FUSED_BACKENDS and isinstance(self.surrogate, Surrogate):
            return self._fused_multi_step_forward(x_seq)
        return self._autograd_multi_step_forward(x_seq)

    def fused_dynamics(self) -> NeuronDynamics:
        """What the fused time loops (``engine.fused_neurons``) need of this neuron."""
        assert isinstance(self.surrogate, Surrogate)
        return NeuronDynamics(
            kind=self.fused_kind,
            tau=float(getattr(self, "tau", 2.0)),
            v_th=self.v_th,
            derivative=self.surrogate.derivative,
            alpha=self.surrogate.alpha,
            record=self.record_mem,
            kernel=_KERNEL_OF.get(self._backend, "torch"),
        )

    def keep_fused_state(self, v: Tensor) -> None:
        """Store a fused loop's potential output: ``[T, ...]`` when recording (the last step is the
        state), else the last step's."""
        if self.record_mem:
            self.mem_seq, self.mem = v, v[-1]
        else:
            self.mem = v

    @boundary
    def _fused_multi_step_forward(self, x_seq: Tensor) -> Tensor:
        spikes, v = fused_multi_step(x_seq, self.mem, self.fused_dynamics(), k=self.fused_factor())
        self.keep_fused_state(v)
        return spikes

    def _autograd_multi_step_forward(self, x_seq: Tensor) -> Tensor:
        mem = self.mem
        spikes, mems = [], []
        for x in x_seq.unbind(0):
            spike, mem = self._step(mem, x)
            spikes.append(spike)
            if self.record_mem:
                mems.append(mem)
        self.mem = mem
        if self.record_mem:
            self.mem_seq = torch.stack(mems)
        return torch.stack(spikes)

    def forward(self, x: Tensor) -> Tensor:
        if self._step_mode == "m":
            return self.multi_step_forward(x)
        return self.single_step_forward(x)

    def extra_repr(self) -> str:
        return f"v_th={self.v_th}, step_mode={self._step_mode!r}, backend={self._backend!r}"


@NEURONS.register("lif")
class LIFNode(BaseNeuron):
    """Leaky integrate-and-fire: ``m ← m + (x − m)/τ`` (τ = 2 halves the potential every step)."""

    uses_tau = True
    fused_kind = "div"

    def __init__(self, tau: float = DEFAULT_NEURON.tau, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not tau > 1.0:
            raise ValueError(f"LIF tau must be > 1 (the leak is 1/tau), got {tau}")
        self.tau = float(tau)

    def charge(self, mem: Tensor | float, x: Tensor) -> Tensor:
        return mem + (x - mem) / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


@NEURONS.register("if")
class IFNode(BaseNeuron):
    """Integrate-and-fire without leak: ``m ← m + x``."""

    fused_kind = "add"

    def charge(self, mem: Tensor | float, x: Tensor) -> Tensor:
        return mem + x


@NEURONS.register("plif")
class PLIFNode(BaseNeuron):
    """Parametric LIF: ``m ← m + (x − m)·σ(w)`` with a learnable ``w`` initialised to ``−log(τ − 1)``.

    At initialisation σ(w) = 1/τ, so a fresh PLIF behaves exactly like a LIF with the same τ.
    """

    uses_tau = True
    fused_kind = "mul"

    def __init__(self, tau: float = DEFAULT_NEURON.tau, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not tau > 1.0:
            raise ValueError(f"PLIF tau must be > 1 (w is initialised to -log(tau - 1)), got {tau}")
        self.w = nn.Parameter(torch.tensor(-math.log(tau - 1.0)))

    def charge(self, mem: Tensor | float, x: Tensor) -> Tensor:
        return mem + (x - mem) * torch.sigmoid(self.w)

    def fused_factor(self) -> Tensor:
        return torch.sigmoid(self.w)


@NEURONS.register("relu")
class ReLUNode(BaseNeuron):
    """Not a spiking neuron: ``model.neuron: relu`` makes any registered model its ANN twin.

    The same topology and parameters, the transfer loss and sliding unchanged; each time step is an
    independent ReLU pass (no state, no threshold, no reset), and the logits are averaged over the T
    steps as for the SNN (``T: 1`` gives the usual single-pass ANN). The transfer feature of a twin is
    the activation where the SNN records its post-reset potential. ``engine.activity`` counts its
    layers' work as multiply-accumulates, since its activations are real numbers (``spiking``).
    """

    spiking = False

    def single_step_forward(self, x: Tensor) -> Tensor:
        self.mem = torch.relu(x)
        return self.mem

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        out = torch.relu(x_seq)
        if self.record_mem:
            self.mem_seq = out
        self.mem = out[-1]
        return out

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r} (ANN twin: ReLU, no spikes)"


def create_neuron(
    name: str,
    *,
    tau: float = DEFAULT_NEURON.tau,
    v_th: float = DEFAULT_NEURON.v_th,
    surrogate: str = DEFAULT_NEURON.surrogate,
    alpha: float = DEFAULT_NEURON.surrogate_alpha,
    step_mode: str = "s",
    record_mem: bool = False,
    backend: str = "fused",
) -> BaseNeuron:
    """Build the neuron called ``name``; ``tau`` is dropped for neurons without a leak (IF)."""
    cls = NEURONS.get(name)
    kwargs: dict[str, Any] = dict(
        v_th=v_th,
        surrogate=surrogate,
        alpha=alpha,
        step_mode=step_mode,
        record_mem=record_mem,
        backend=backend,
    )
    if cls.uses_tau:
        kwargs["tau"] = tau
    return cls(**kwargs)


def reset_neurons(module: nn.Module) -> None:
    """Reset the state of every neuron inside ``module`` (the module itself included)."""
    for sub in module.modules():
        if isinstance(sub, BaseNeuron):
            sub.reset()
