"""``train.compile``: ``torch.compile`` over each block of the model, or over the training step.

``blocks`` compiles every unit a model family names (``SpikingModel.compile_units``: VGG's conv → BN →
neuron blocks, ResNet's residual blocks, SCNN's feature stack) in place, so the state dict, checkpoints
and hooks are unchanged. ``step`` compiles the step's forward and loss as one function
(``engine.training.loop.TrainLoop``); AOTAutograd derives the backward of both. In either mode the fused
and Triton neuron nodes stay opaque calls (``engine.compile_boundary``): compile pays off around them,
and for the ``autograd`` neuron, whose time loop Inductor fuses itself.

Shapes are static (``dynamic=False``): a run's batch shape is fixed, the last short batch aside, which
compiles once more. CUDA graphs (``mode="reduce-overhead"``) are not switched on: the neurons keep their
state between calls in tensors a graph replay would overwrite, which needs a GPU to check first
(``bench/gpu_check.py`` measures it as its own variant).

Tested equal to the uncompiled model and step on the CPU (``tests/test_compile.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from engine.compile_boundary import install

__all__ = ["compile_blocks", "compile_function"]

F = TypeVar("F", bound=Callable[..., Any])


def compile_blocks(model: nn.Module) -> nn.Module:
    """Compile each of ``model.compile_units()`` in place (``nn.Module.compile``); returns ``model``."""
    install()
    units = model.compile_units() if hasattr(model, "compile_units") else [model]
    for unit in units:
        unit.compile(dynamic=False)
    return model


def compile_function(fn: F, mode: str | None = None) -> F:
    """``torch.compile(fn)`` with the neuron boundaries in place; ``mode`` is torch.compile's
    (``bench/gpu_check.py`` times ``"reduce-overhead"``, CUDA graphs, as a variant of its own)."""
    import torch  # noqa: PLC0415

    install()
    return torch.compile(fn, dynamic=False, mode=mode)  # type: ignore[return-value]
