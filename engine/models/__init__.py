"""Spiking models by name: ``create_model(name, num_classes=K, T=T, width=1.0, ...)``.

Registered: ``transfer_vgg_snn``, ``transfer_resnet18``, ``transfer_resnet34``, ``transfer_scnn`` (the
static→event transfer models) and the event-only baselines ``vgg_snn``, ``resnet18``, ``scnn``.
"""

from engine.models import resnet, scnn, vgg  # noqa: F401 — importing registers the models
from engine.models.base import EventModel, SpikingModel, TransferModel, TransferOutput
from engine.models.factory import (
    AUTO_MEMORY_FORMAT,
    AUTO_STEP_MODE,
    MODELS,
    create_model,
    list_models,
    resolve_memory_format,
    resolve_neuron_backend,
    resolve_step_mode,
)
from engine.models.layers import set_memory_format, set_neuron_backend, set_step_mode
from engine.models.lean_conv import set_lean_spikes
from engine.models.recompute import set_recompute
from engine.neuron_spec import NeuronSpec

__all__ = [
    "AUTO_MEMORY_FORMAT",
    "AUTO_STEP_MODE",
    "MODELS",
    "EventModel",
    "NeuronSpec",
    "SpikingModel",
    "TransferModel",
    "TransferOutput",
    "create_model",
    "list_models",
    "resolve_memory_format",
    "resolve_neuron_backend",
    "resolve_step_mode",
    "set_lean_spikes",
    "set_memory_format",
    "set_neuron_backend",
    "set_recompute",
    "set_step_mode",
]
