"""Small spiking CNN for N-Omniglot (spec §2.3): two 5×5 conv→LIF→pool stages, fc1 → LIF → fc2.

No BatchNorm, and one head (``fc2``) shared by both streams, as the original. The transfer feature is
the post-reset membrane potential of ``node1`` (300-d). Initialisation follows the original: conv
weights Kaiming-normal (fan_in), linear weights uniform(−0.1, 0.1), biases PyTorch's default.

Fixed here: the original ``fc2`` always had 1623 outputs whatever ``--num-classes`` said; ours has
``num_classes`` outputs (1623 for N-Omniglot, so the published configuration is unchanged).

BrainCog checkpoint keys → ours (``engine.models.legacy_keys``)::

    coefficient.{t}                       → coefficient.{t}      (transfer only)
    feature.0.weight, feature.3.weight    → same (convs; pools at 2 and 5)
    fc1.{weight,bias}, fc2.{weight,bias}  → same
    feature.{1,4}.threshold, feature.{1,4}.act_fun.alpha, node1.threshold, node1.act_fun.alpha
                                          → (none: fixed numbers here)
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from engine.models.base import EventModel, SpikingModel, TransferModel, scaled
from engine.models.factory import MODELS
from engine.models.layers import AvgPool2d, Conv2d, Flatten, Linear
from engine.neuron_spec import NeuronSpec

__all__ = ["SCNN", "TransferSCNN"]


class _SCNNBody(SpikingModel):
    default_input_size: ClassVar[int] = 28
    fixed_input_size: ClassVar[bool] = True
    min_input_size: ClassVar[int] = 16

    def build_body(self, width: float, neuron: NeuronSpec) -> None:
        c1, c2, hidden = scaled(15, width), scaled(40, width), scaled(300, width)
        self.feature = nn.Sequential(
            Conv2d(2, c1, kernel_size=5, bias=False),
            neuron.build(),
            AvgPool2d(2),
            Conv2d(c1, c2, kernel_size=5, bias=False),
            neuron.build(),
            AvgPool2d(2),
        )
        side = ((self.input_size - 4) // 2 - 4) // 2
        self.flatten = Flatten()
        self.fc1 = Linear(c2 * side * side, hidden)
        self.node1 = neuron.build(record_mem=True)
        self.fc2 = Linear(hidden, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -0.1, 0.1)

    def build_heads(self, features: int | None) -> None:
        """None: both streams share the body's own last layer ``fc2`` (the original's names)."""

    def compile_units(self) -> list[nn.Module]:
        return [self.feature]

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.node1(self.fc1(self.flatten(self.feature(x))))
        return hidden, self.recorded(self.node1)

    @property
    def static_head(self) -> nn.Module:
        return self.fc2

    @property
    def event_head(self) -> nn.Module:
        return self.fc2


@MODELS.register("transfer_scnn")
class TransferSCNN(_SCNNBody, TransferModel):
    """Transfer SCNN (BrainCog ``Transfer_SCNN``): both streams use the whole net, ``fc2`` included."""


@MODELS.register("scnn")
class SCNN(_SCNNBody, EventModel):
    """Event-only SCNN baseline (BrainCog ``SCNN``); its head keeps the original name ``fc2``."""
