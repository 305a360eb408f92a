"""Pre-activation spiking ResNet (spec §2.2): BN → LIF → conv inside blocks, analogue residual stream.

Used for CEP-DVS (ResNet18, T = 6, 48×48). ``conv1`` (3×3, 2→64) feeds four stages of
:class:`BasicBlock` (``out = conv2(node2(bn2(conv1(node1(bn1(x)))))) + shortcut(x)``; no neuron after
the addition); a final ``bn1`` → global average pool gives the 512-d analogue transfer feature, and
the heads read that same vector. Convolutions use Kaiming-normal (fan_out, relu) initialisation, as
the original.

BrainCog checkpoint keys → ours (``engine.models.legacy_keys``): identical names, minus the neurons'
frozen parameters::

    coefficient.{t}                                      (transfer only)
    conv1.weight
    layer{s}.{b}.bn1.* / conv1.weight / bn2.* / conv2.weight
    layer{s}.0.downsample.0.*  (BN)   layer{s}.0.downsample.2.weight  (1×1 conv)    s ∈ {2, 3, 4}
    bn1.*                                                (final BN)
    rgb_fc.{weight,bias}, dvs_fc.{weight,bias}           (transfer) / fc.{weight,bias} (``resnet18``)
    layer{s}.{b}.node{1,2}.threshold, .act_fun.alpha     → (none: fixed numbers here)
    layer{s}.0.downsample.1.threshold, .act_fun.alpha    → (none)

The original's ``node2``/``vote`` are ``Identity`` (no spike output) and hold no keys.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from engine.models.base import EventModel, SpikingModel, TransferModel, scaled
from engine.models.factory import MODELS
from engine.models.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten
from engine.models.recompute import norm_spike
from engine.neuron_spec import NeuronSpec

__all__ = ["BasicBlock", "ResNet18SNN", "TransferResNet18", "TransferResNet34"]

STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Pre-activation basic block; the shortcut is ``BN → neuron → 1×1 conv`` when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int, neuron: NeuronSpec) -> None:
        super().__init__()
        self.bn1 = BatchNorm2d(in_planes)
        self.node1 = neuron.build()
        self.conv1 = Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.node2 = neuron.build()
        self.conv2 = Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                BatchNorm2d(in_planes),
                neuron.build(),
                Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
            )
        for conv in (self.conv1, self.conv2, *(self.downsample or ())[2:]):
            conv.spike_input = True  # each one reads a neuron's spikes

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(norm_spike(self.bn1, self.node1, x))
        out = self.conv2(norm_spike(self.bn2, self.node2, out))
        if self.downsample is None:
            return out + x
        bn, node, conv = self.downsample
        return out + conv(norm_spike(bn, node, x))


class _ResNetBody(SpikingModel):
    default_input_size: ClassVar[int] = 48
    blocks: ClassVar[tuple[int, int, int, int]] = (2, 2, 2, 2)

    def build_body(self, width: float, neuron: NeuronSpec) -> int:
        widths = [scaled(c, width) for c in STAGE_WIDTHS]
        self.conv1 = Conv2d(2, widths[0], kernel_size=3, padding=1, bias=False)
        in_planes = widths[0]
        for stage, (planes, count) in enumerate(zip(widths, self.blocks, strict=True), start=1):
            stride = 1 if stage == 1 else 2
            blocks = []
            for b in range(count):
                blocks.append(BasicBlock(in_planes, planes, stride if b == 0 else 1, neuron))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.bn1 = BatchNorm2d(in_planes)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        return in_planes

    def compile_units(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, BasicBlock)]

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv1(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        feature = self.flatten(self.avgpool(self.bn1(x)))
        return feature, feature


@MODELS.register("resnet18")
class ResNet18SNN(_ResNetBody, EventModel):
    """Event-only ResNet18 baseline (BrainCog ``resnet18``), blocks [2, 2, 2, 2]: one head ``fc``."""


@MODELS.register("transfer_resnet18")
class TransferResNet18(_ResNetBody, TransferModel):
    """Transfer ResNet18 (BrainCog ``Transfer_ResNet18``), blocks [2, 2, 2, 2]."""


@MODELS.register("transfer_resnet34")
class TransferResNet34(_ResNetBody, TransferModel):
    """Transfer ResNet34 (BrainCog ``Transfer_ResNet34``), blocks [3, 4, 6, 3]."""

    blocks: ClassVar[tuple[int, int, int, int]] = (3, 4, 6, 3)
