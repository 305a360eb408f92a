"""Calls that ``torch.compile`` must run as they are instead of tracing: the fused and Triton neuron nodes.

Why. Dynamo traces Python: into the fused neuron's autograd node it finds ``out=`` writes into strided
buffers and a Python loop whose state changes type (``None`` → tensor), and breaks the graph at every
step of every neuron, then recompiles per call (measured: ~60 breaks and 8 recompiles for one small
VGG). These nodes are already one kernel per neuron (or a tight torch loop), so the compiled model
calls them as opaque functions and compiles what lies between them (convolutions, BatchNorm, heads,
losses). The plain ``autograd`` neuron has no boundary: Dynamo traces its loop and Inductor fuses it.

A function decorated with :func:`boundary` runs itself normally; while Dynamo traces, it calls a
``torch.compiler.disable``-d twin, which :func:`install` creates (importing ``torch._dynamo``, ~3 s)
only when a model is actually compiled (``engine.training.compile``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["boundary", "install"]

F = TypeVar("F", bound=Callable[..., Any])

_FUNCTIONS: list[Callable[..., Any]] = []
_DISABLED: dict[Callable[..., Any], Callable[..., Any]] = {}


def boundary(fn: F) -> F:
    """Mark ``fn`` as a call compiled code makes without tracing into it (module docstring)."""
    _FUNCTIONS.append(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if torch.compiler.is_compiling():
            return _DISABLED[fn](*args, **kwargs)
        return fn(*args, **kwargs)

    return call  # type: ignore[return-value]


def install() -> None:
    """Create the Dynamo-disabled twin of every :func:`boundary` function (idempotent)."""
    for fn in _FUNCTIONS:
        if fn not in _DISABLED:
            _DISABLED[fn] = torch.compiler.disable(fn)
