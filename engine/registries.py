"""Which config key is checked against which registry.

One table, so that :meth:`engine.config.RunConfig.validate` can reject an unknown model, neuron,
surrogate, sliding schedule, static channel, dataset pair, optimiser or LR schedule before anything is
built, with the list of valid names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.registry import Registry


def config_name_checks(c: RunConfig) -> list[tuple[str, str, Registry[Any]]]:
    from engine.data import PAIRS
    from engine.models import MODELS
    from engine.neurons import NEURONS
    from engine.sliding import SCHEDULES
    from engine.static_channel import STATIC_CHANNELS
    from engine.surrogates import SURROGATES
    from engine.training.optim import LR_SCHEDULES, OPTIMIZERS

    return [
        ("model.name", c.model.name, MODELS),
        ("model.neuron", c.model.neuron, NEURONS),
        ("model.surrogate", c.model.surrogate, SURROGATES),
        ("data.pair", c.data.pair, PAIRS),
        ("method.static_channel", c.method.static_channel, STATIC_CHANNELS),
        ("sliding.schedule", c.sliding.schedule, SCHEDULES),
        ("optim.name", c.optim.name, OPTIMIZERS),
        ("schedule.name", c.schedule.name, LR_SCHEDULES),
    ]
