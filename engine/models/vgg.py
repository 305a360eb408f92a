"""Spiking VGG (spec §2.1): eight conv→BN→LIF blocks, four average pools, linear heads on pooled spikes.

Used for N-Caltech101 (T = 10, 48×48). The transfer feature is the post-reset membrane potential of
the last conv block's neuron (``feature[-2].node``): 512×6×6 = 18,432 values per sample at 48×48.
The heads see the average-pooled spikes (512×3×3 at 48×48, so the head size depends on
``input_size``) and emit real-valued logits every step; there is no output neuron.

BrainCog checkpoint keys → ours (``engine.models.legacy_keys``)::

    coefficient.{t}                      → coefficient.{t}                 (transfer only)
    feature.{i}.conv.weight              → feature.{i}.conv.weight         i ∈ {0,1,3,4,6,7,9,10}
    feature.{i}.bn.{weight,bias,running_mean,running_var,num_batches_tracked}
                                         → feature.{i}.bn.{...}
    feature.{i}.node.threshold           → (none: V_th is a constructor number, model.v_th)
    feature.{i}.node.act_fun.alpha       → (none: the surrogate's α is fixed at 2.0)
    rgb_fc.1.{weight,bias}               → rgb_fc.{weight,bias}            (transfer; index 0 was Flatten)
    dvs_fc.1.{weight,bias}               → dvs_fc.{weight,bias}            (transfer)
    fc.1.{weight,bias}                   → fc.{weight,bias}                (event-only ``vgg_snn``)

Pool layers keep their original indices (2, 5, 8, 11) so the conv blocks keep theirs.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from engine.models.base import EventModel, SpikingModel, TransferModel, scaled
from engine.models.factory import MODELS
from engine.models.layers import AvgPool2d, BatchNorm2d, Conv2d, Flatten
from engine.models.recompute import norm_spike
from engine.neuron_spec import NeuronSpec

__all__ = ["TransferVGGSNN", "VGGSNN", "VGG_PLAN"]

VGG_PLAN: tuple[int | str, ...] = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")
"""Output channels of each conv block, ``"P"`` for a 2×2 average pool (original ``feature`` order)."""


class ConvBlock(nn.Module):
    """3×3 conv (no bias) → BatchNorm → spiking neuron: BrainCog's ``BaseConvModule``."""

    def __init__(self, in_channels: int, out_channels: int, neuron: NeuronSpec, record_mem: bool = False):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = BatchNorm2d(out_channels)
        self.node = neuron.build(record_mem=record_mem)

    def forward(self, x: Tensor) -> Tensor:
        return norm_spike(self.bn, self.node, self.conv(x))


class _VGGBody(SpikingModel):
    default_input_size: ClassVar[int] = 48
    fixed_input_size: ClassVar[bool] = True
    min_input_size: ClassVar[int] = 16

    def build_body(self, width: float, neuron: NeuronSpec) -> int:
        """Build ``feature`` and ``flatten``; return the head's input size."""
        layers: list[nn.Module] = []
        channels, side = 2, self.input_size
        last_conv = max(i for i, entry in enumerate(VGG_PLAN) if entry != "P")
        for i, entry in enumerate(VGG_PLAN):
            if entry == "P":
                layers.append(AvgPool2d(2))
                side //= 2
            else:
                out = scaled(int(entry), width)
                block = ConvBlock(channels, out, neuron, record_mem=i == last_conv)
                block.conv.spike_input = bool(layers) and isinstance(layers[-1], ConvBlock)
                layers.append(block)
                channels = out
        self.feature = nn.Sequential(*layers)
        self.flatten = Flatten()
        return channels * side * side

    def compile_units(self) -> list[nn.Module]:
        return [m for m in self.feature if isinstance(m, ConvBlock)]

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.flatten(self.feature(x))
        return hidden, self.recorded(self.feature[-2].node)


@MODELS.register("transfer_vgg_snn")
class TransferVGGSNN(_VGGBody, TransferModel):
    """Transfer VGG-SNN (BrainCog ``Transfer_VGG_SNN``): heads ``rgb_fc`` (static) and ``dvs_fc`` (event)."""


@MODELS.register("vgg_snn")
class VGGSNN(_VGGBody, EventModel):
    """Event-only VGG-SNN baseline (BrainCog ``VGG_SNN``): one head ``fc``."""
