"""What every spiking model shares: input checks, the two step modes, the transfer forward.

Tensor layout. Inputs are ``(B, T, 2, H, W)`` float32 (what the data loaders yield); inside the model
time leads, ``[T, B, ...]``, and every per-step output is stacked the same way: features ``[T, B, D]``,
logits ``[T, B, K]``. ``output[t]`` is step t, so TET and the per-step CKA index time directly.

Two passes. A transfer model runs the static stream and the event stream through the shared backbone
in two separate passes with the neuron state reset before each (spec §2): BatchNorm never mixes the
two batches and its running statistics see the static pass first, then the event pass, as in the
original. Concatenating the streams into one 2B batch would change the method.

Families. A model is a *body* (``_VGGBody``, ``_ResNetBody``, ``_SCNNBody``: the layers shared by
both variants) crossed with :class:`TransferModel` (heads ``rgb_fc`` / ``dvs_fc`` and T coefficients)
or :class:`EventModel` (head ``fc``); :class:`SpikingModel`'s constructor builds coefficients, body and
heads in that order, so a registry entry is an empty subclass naming its body and its kind.

Step modes. ``step_mode = "s"`` replays the original step-by-step loop (the reference path);
``"m"`` (default) runs the stack layer by layer over all steps (``engine.models.layers``), with fused
neurons (``engine.fused_neurons``) and, where measured faster, channels-last frames. Both give the same
numbers; ``"m"`` is faster because each convolution and each BatchNorm is one large call instead of T
small ones and each neuron's time loop is one autograd node (``bench/bench_engine.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from engine.models.layers import Linear, StepModule, time_major_channels_last
from engine.neuron_spec import DEFAULT_NEURON, NeuronSpec
from engine.neurons import BaseNeuron, reset_neurons

__all__ = [
    "EventModel",
    "SpikingModel",
    "TransferModel",
    "TransferOutput",
    "scaled",
]


@dataclass
class TransferOutput:
    """The four per-step outputs of a transfer model's forward pass (each stacked over time)."""

    feat_static: Tensor
    """``[T, B, D]`` transfer feature of the static pass (what CKA compares)."""
    feat_event: Tensor
    """``[T, B, D]`` transfer feature of the event pass."""
    logits_static: Tensor
    """``[T, B, K]`` static-head logits per step."""
    logits_event: Tensor
    """``[T, B, K]`` event-head logits per step."""


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


class SpikingModel(StepModule, nn.Module):
    """Base class: checks inputs, resets neurons, and runs a pass in either step mode.

    Subclasses build their layers and implement :meth:`backbone`, which maps one frame ``[B, 2, H, W]``
    (single-step mode) or all frames ``[T, B, 2, H, W]`` (multi-step mode) to ``(head_input,
    transfer_feature)``; the same code serves both modes because every layer dispatches on its own
    ``step_mode``.
    """

    is_transfer: ClassVar[bool] = False
    default_input_size: ClassVar[int] = 48
    fixed_input_size: ClassVar[bool] = False
    """True when a head's size depends on the input's spatial size (VGG, SCNN)."""
    min_input_size: ClassVar[int] = 1
    channels_last: bool = False
    """Multi-step mode only: run the frames channels-last, time-major (``engine.models.layers``);
    set with :func:`engine.models.layers.set_memory_format`, which also converts the conv weights."""

    def __init__(
        self,
        *,
        num_classes: int,
        T: int,
        width: float = 1.0,
        neuron: NeuronSpec = DEFAULT_NEURON,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        if T < 1:
            raise ValueError(f"T must be ≥ 1, got {T}")
        self.num_classes = int(num_classes)
        self.T = int(T)
        self.input_size = int(input_size if input_size is not None else self.default_input_size)
        if self.input_size < self.min_input_size:
            raise ValueError(
                f"{type(self).__name__} needs input_size ≥ {self.min_input_size}, got {self.input_size}"
            )
        self.build_parameters()
        self.build_heads(self.build_body(width, neuron))

    # ----------------------------------------------------------------------------------------------
    # what a family and a kind build (in this order: the registration order is the state dict's)
    def build_parameters(self) -> None:
        """Parameters that come before the body (a transfer model's coefficients)."""

    def build_body(self, width: float, neuron: NeuronSpec) -> int | None:
        """The family's layers; returns the size of the head's input (``None``: the body has its head)."""
        raise NotImplementedError

    def build_heads(self, features: int | None) -> None:
        """The kind's heads on ``features`` inputs."""
        raise NotImplementedError

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def compile_units(self) -> list[nn.Module]:
        """What ``train.compile: blocks`` compiles, each on its own (``engine.training.compile``)."""
        return [self]

    def recorded(self, node: BaseNeuron) -> Tensor:
        """The post-reset potential of ``node``: this step's (``"s"``) or every step's (``"m"``)."""
        if self.step_mode == "m":
            assert node.mem_seq is not None, "the feature neuron must be built with record_mem=True"
            return node.mem_seq
        return node.mem  # type: ignore[return-value]

    def reset(self) -> None:
        reset_neurons(self)

    def run_pass(self, x_seq: Tensor, head: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """One pass over ``x_seq [T, B, 2, H, W]`` from a fresh state → (features [T,B,D], logits [T,B,K])."""
        self.reset()
        if self.step_mode == "m":
            if self.channels_last:
                x_seq = time_major_channels_last(x_seq)
            hidden, feature = self.backbone(x_seq)
            return feature.flatten(2), head(hidden)
        features, logits = [], []
        for frame in x_seq.unbind(0):
            hidden, feature = self.backbone(frame)
            features.append(feature.flatten(1))
            logits.append(head(hidden))
        return torch.stack(features), torch.stack(logits)

    def check_input(self, x: Tensor, what: str) -> None:
        """Fail early, naming the shape, on anything but ``(B, T, 2, H, W)`` with this model's T."""
        expected = f"(B, T={self.T}, 2, H, W)"
        if self.fixed_input_size:
            expected = f"(B, T={self.T}, 2, {self.input_size}, {self.input_size})"
        shape = tuple(x.shape)
        ok = x.dim() == 5 and shape[1] == self.T and shape[2] == 2
        if ok and self.fixed_input_size:
            ok = shape[3] == shape[4] == self.input_size
        if not ok:
            hint = ""
            if self.fixed_input_size and x.dim() == 5:
                hint = f" (this {type(self).__name__} was built for input_size={self.input_size})"
            raise ValueError(f"{what} input must have shape {expected}; got {shape}{hint}")

    def forward_event(self, x_event: Tensor) -> Tensor:
        """Event-branch logits ``[T, B, K]`` for ``x_event (B, T, 2, H, W)`` (evaluation path)."""
        self.check_input(x_event, "event")
        _, logits = self.run_pass(x_event.transpose(0, 1), self.event_head)
        return logits

    @property
    def event_head(self) -> nn.Module:
        raise NotImplementedError


class EventModel(SpikingModel):
    """Event-only baseline (the original ``main.py`` models): one head ``fc``."""

    is_transfer: ClassVar[bool] = False

    def build_heads(self, features: int | None) -> None:
        self.fc = Linear(features, self.num_classes)

    @property
    def event_head(self) -> nn.Module:
        return self.fc

    def forward(self, x_event: Tensor) -> Tensor:
        return self.forward_event(x_event)


class TransferModel(SpikingModel):
    """Static→event transfer model: shared backbone, per-stream heads, T learnable coefficients.

    ``coefficient`` holds T raw scalars ``c_t`` (shape ``[1]`` each, init 1.0, as the original);
    :meth:`alpha` returns ``σ(c)`` as one ``[T]`` tensor for the loss.
    """

    is_transfer: ClassVar[bool] = True

    static_bn_stats: bool = True
    """Whether the static pass updates BatchNorm running statistics. ``True`` is the original (spec §11
    item 23: 2T updates per iteration, the event pass last), so evaluation — event data only — normalises
    with statistics partly estimated on static images. ``False`` freezes them during the static pass
    (batch statistics still normalise it), so they describe event data alone. Set from
    ``method.static_bn_stats`` by the model builder."""

    def build_parameters(self) -> None:
        self.coefficient = nn.ParameterList([nn.Parameter(torch.ones(1)) for _ in range(self.T)])

    def build_heads(self, features: int | None) -> None:
        self.rgb_fc = Linear(features, self.num_classes)
        self.dvs_fc = Linear(features, self.num_classes)

    def add_mixup_heads(self, feature_dim: int, *, source: bool, ratio: bool) -> None:
        """Time-step mixup's auxiliary heads (:mod:`engine.mixup`), one linear layer each on the per-step
        transfer feature: ``mixup_source_head`` (one logit per frame: event frame?) and
        ``mixup_ratio_head`` (one logit per sequence from the time-averaged feature: its fraction of event
        frames). Only runs that give them a weight have them, so other checkpoints keep their keys."""
        if source:
            self.mixup_source_head = nn.Linear(feature_dim, 1)
        if ratio:
            self.mixup_ratio_head = nn.Linear(feature_dim, 1)

    def alpha(self) -> Tensor:
        """``α_t = σ(c_t)`` for every step, shape ``[T]``."""
        return torch.sigmoid(torch.cat(tuple(self.coefficient)))

    @property
    def static_head(self) -> nn.Module:
        return self.rgb_fc

    @property
    def event_head(self) -> nn.Module:
        return self.dvs_fc

    def forward(self, x_static: Tensor, x_event: Tensor) -> TransferOutput:
        """Static pass, reset, event pass; each returns per-step features and logits."""
        if x_static.shape != x_event.shape:
            raise ValueError(
                "static and event inputs must have the same shape (B, T, 2, H, W); "
                f"got static {tuple(x_static.shape)} and event {tuple(x_event.shape)}"
            )
        self.check_input(x_static, "static")
        self.check_input(x_event, "event")
        with _running_stats_frozen(self, not self.static_bn_stats):
            feat_s, logits_s = self.run_pass(x_static.transpose(0, 1), self.static_head)
        feat_e, logits_e = self.run_pass(x_event.transpose(0, 1), self.event_head)
        return TransferOutput(
            feat_static=feat_s, feat_event=feat_e, logits_static=logits_s, logits_event=logits_e
        )


@contextlib.contextmanager
def _running_stats_frozen(model: nn.Module, frozen: bool) -> Iterator[None]:
    """Momentum 0 on every BatchNorm for the duration: r ← (1 − 0)·r + 0·s leaves the running statistics
    as they were, on the step-by-step and the closed-form multi-step path alike."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if frozen else []
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
