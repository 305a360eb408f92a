"""The spiking transfer engine: neurons, models, losses, sliding schedules, data and training.

``engine.create_model(name, num_classes=K, T=T, width=1.0, **kw)`` and ``engine.list_models()`` are the
stable entry points; they are resolved lazily so that ``import engine.config`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_model", "list_models"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine import models

        return getattr(models, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
