"""The one validation entry for a run configuration: ``train``, ``eval`` and every planned point of a
sweep go through :func:`check_config`, so a sweep cannot launch trials the trainer would reject.

:meth:`RunConfig.validate` checks ranges and registry names without model code; this adds what needs
the model classes (a model's minimum input size, the CKA loss's batch needs), imported only here.
"""

from __future__ import annotations

from engine.config import RunConfig
from engine.errors import ConfigError

__all__ = ["check_config"]


def check_config(config: RunConfig) -> RunConfig:
    """All checks that need no data: :meth:`RunConfig.validate` plus what the trainer needs."""
    config.validate()
    from engine.models import MODELS  # noqa: PLC0415 — model code only once the names are known good

    problems = []
    model_cls = MODELS.get(config.model.name)
    min_size = getattr(model_cls, "min_input_size", 1)
    if config.data.event_size < min_size:
        problems.append(
            f"data.event_size = {config.data.event_size}: model {config.model.name} needs inputs of at "
            f"least {min_size} px"
        )
    if config.sliding.mixup != "none" and not getattr(model_cls, "is_transfer", False):
        problems.append(
            f"sliding.mixup = {config.sliding.mixup}: time-step mixup mixes the static stream, which the "
            f"event-only model {config.model.name} does not have; use a transfer_* model or mixup none"
        )
    if getattr(model_cls, "is_transfer", False) and config.method.domain_loss and config.batch_size < 2:
        problems.append(
            f"batch_size = {config.batch_size}: the CKA transfer loss compares samples within a batch, "
            "so it needs batch_size ≥ 2 (or method.domain_loss = false)"
        )
    if problems:
        raise ConfigError("invalid run configuration:\n  - " + "\n  - ".join(problems))
    return config
