"""The model registry and the one way to build a model: :func:`create_model`.

Modelled on timm's ``create_model``: every architecture registers itself under a short name, configs
and sweeps name models by that string, and an unknown name (model, neuron or surrogate) fails at once
with the list of valid names instead of deep inside a run.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from engine.models.layers import set_step_mode
from engine.neurons import NEURONS
from engine.registry import Registry
from engine.surrogates import SURROGATES

if TYPE_CHECKING:
    from engine.models.base import SpikingModel

__all__ = ["MODELS", "create_model", "list_models"]

MODELS: Registry[type[SpikingModel]] = Registry("model")


def create_model(
    name: str,
    *,
    num_classes: int,
    T: int,
    width: float = 1.0,
    neuron: str = "lif",
    surrogate: str = "qgate",
    tau: float = 2.0,
    v_th: float = 0.5,
    input_size: int | None = None,
    step_mode: str = "m",
    surrogate_alpha: float = 2.0,
) -> SpikingModel:
    """Build the registered model ``name``.

    Args:
        name: a registry name (:func:`list_models`).
        num_classes: K, the number of logits per step.
        T: time steps; inputs must be ``(B, T, 2, H, W)`` and transfer models own T coefficients.
        width: channel multiplier (1.0 = the published network; e.g. 0.125 for tests and smoke runs).
        neuron: ``lif``, ``if`` or ``plif``.
        surrogate: ``qgate``, ``backei_gate``, ``gate``, ``atan`` or ``sigmoid``.
        tau: membrane time constant (LIF/PLIF).
        v_th: firing threshold.
        input_size: side of the square input; ``None`` means the model's ``default_input_size``
            (48 for VGG and ResNet, 28 for SCNN). VGG and SCNN heads are sized from it.
        step_mode: ``"m"`` (fast, layer by layer; default) or ``"s"`` (the original step-by-step
            order; the reference the fast path is tested against).
        surrogate_alpha: the surrogate's α (the original hard-codes 2.0).

    Example:
        >>> model = create_model("transfer_vgg_snn", num_classes=101, T=10, width=0.25)
        >>> out = model(x_static, x_event)        # TransferOutput, each field [T, B, ...]
    """
    cls = MODELS.get(name)
    NEURONS.get(neuron)
    SURROGATES.get(surrogate)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    from engine.models.base import NeuronSpec  # noqa: PLC0415 — base imports this module's registry users

    spec = NeuronSpec(name=neuron, tau=tau, v_th=v_th, surrogate=surrogate, alpha=surrogate_alpha)
    model = cls(num_classes=num_classes, T=T, width=width, neuron=spec, input_size=input_size)
    set_step_mode(model, step_mode)
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters with shell wildcards (``"transfer_*"``)."""
    names = MODELS.names()
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]
