"""What every neuron of a model is — kind, τ, threshold, surrogate — and the neuron defaults, in one place.

A model is built from one :class:`NeuronSpec` (``create_model(..., neuron=spec)``), a run configuration
holds the same fields (``model.neuron``, ``model.tau``, …; ``engine.config.ModelConfig.neuron_spec``),
and every default (the paper's LIF, τ = 2, V_th = 0.5, QGate with α = 2) is :data:`DEFAULT_NEURON`'s,
read by the config, the neuron classes and the factory alike. This module imports no torch, so reading a
config stays light; :meth:`NeuronSpec.build` imports the neurons when a model is actually built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.neurons import BaseNeuron

__all__ = ["BACKENDS", "BACKEND_CHOICES", "DEFAULT_NEURON", "NeuronSpec"]

BACKENDS = ("fused", "autograd", "triton")
"""How a multi-step neuron runs its T steps (``engine.neurons`` says what each one is)."""
BACKEND_CHOICES = ("auto", *BACKENDS)
"""What ``model.neuron_backend`` accepts: a backend, or ``auto``
(``engine.models.resolve_neuron_backend``)."""


@dataclass(frozen=True)
class NeuronSpec:
    """How to build every neuron of a model (one kind, one τ, one threshold, one surrogate)."""

    kind: str = "lif"
    """A registered neuron (``engine.neurons.NEURONS``): ``lif``, ``if``, ``plif`` or ``relu``."""
    tau: float = 2.0
    """Membrane time constant (LIF, PLIF's initial value); ignored by neurons without a leak."""
    v_th: float = 0.5
    surrogate: str = "qgate"
    """A registered surrogate gradient (``engine.surrogates.SURROGATES``)."""
    surrogate_alpha: float = 2.0
    """The surrogate's α (the original hard-codes 2.0)."""

    @classmethod
    def of(cls, neuron: NeuronSpec | str, **fields: Any) -> NeuronSpec:
        """``neuron`` (a spec, or a kind's name) with ``fields`` replaced:
        ``NeuronSpec.of("plif", tau=3.0)``."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "kind"]
        unknown = sorted(set(fields) - set(names))
        if unknown:
            raise TypeError(f"unknown neuron field(s) {unknown}; a neuron spec has {names}")
        spec = cls(kind=neuron) if isinstance(neuron, str) else neuron
        return dataclasses.replace(spec, **fields)

    def build(self, record_mem: bool = False) -> BaseNeuron:
        from engine.neurons import create_neuron  # noqa: PLC0415 — torch only when a model is built

        return create_neuron(
            self.kind,
            tau=self.tau,
            v_th=self.v_th,
            surrogate=self.surrogate,
            alpha=self.surrogate_alpha,
            record_mem=record_mem,
        )


DEFAULT_NEURON = NeuronSpec()
"""The paper's neuron: LIF, τ = 2, V_th = 0.5, QGate surrogate with α = 2."""
