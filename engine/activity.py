"""Spike activity, synaptic operations and an energy estimate per inference, counted during evaluation.

Why these numbers: a spiking network is worth studying because a neuromorphic chip only does work when
a spike arrives. Per inference (one test recording, all T time steps) this module counts

* per neuron layer: the spikes it emits and its **firing rate**, spikes per neuron per time step;
* per synaptic layer (convolution, linear) the operations it performs:

  - **accumulates (ACs)** when its input comes from spikes: a spike at input position i adds one
    weight into each output that reads i, so the layer does ``Σ_i nonzero(x_i) · fanout(i)`` ACs.
    ``fanout(i)`` is exact for every position (a border pixel feeds fewer outputs of a padded
    convolution): for a convolution it is ``C_out / groups`` times the number of output positions whose
    receptive field covers ``i``, the adjoint of the convolution applied to ones
    (``torch.nn.grad.conv2d_input``); for a linear layer it is ``out_features``. Average pooling or
    flattening between the neuron and the layer keeps the input "from spikes": pooling is linear and
    folds into the next layer's weights, so a spike's fan-out is that of the pooled positions its
    window reaches (the adjoint of the pooling applied to the layer's fan-out map). Each spike times
    the fan-out of the layer it feeds, as SNN papers count synaptic operations;
  - **multiply-accumulates (MACs)** when its input is real-valued — the first layer reading the event
    frames, a head reading normalised potentials (ResNet's) — counted densely:
    ``C_out · H_out · W_out · (C_in / groups) · k_h · k_w`` per frame for a convolution,
    ``in · out`` for a linear layer, whatever the values;

* the **energy estimate** ``E = ACs · e_AC + MACs · e_MAC``, with Horowitz (ISSCC 2014, 45 nm) as the
  defaults: 0.9 pJ per 32-bit float add, 4.6 pJ per 32-bit float multiply-add
  (:data:`E_AC_PJ`, :data:`E_MAC_PJ`; ``energy.e_ac_pj`` and ``energy.e_mac_pj`` in the run config).
  Normalisation, the neurons' own updates, memory traffic and biases are not counted, as in the SNN
  literature this estimate is compared with.

An ANN (a network whose "neurons" emit real values) does MACs only: its layers' inputs are not spikes.

How, without slowing evaluation down: forward hooks on the model's neurons, synaptic layers and
poolings. Everything is summed into tensors on the model's device (the nonzero counts of the inputs,
reduced to one ``[H, W]`` map by a sum of the 0/1 spikes, which the next layer reuses, against a
fan-out map computed once per layer and input size); dense
MAC counts come from shapes, on the host. Nothing is read back until :meth:`ActivityMeter.result`.
``bench/bench_activity.py`` measures what the hooks cost.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from engine.models.layers import AdaptiveAvgPool2d, AvgPool2d, Conv2d, Flatten, Linear
from engine.neurons import BaseNeuron

__all__ = ["E_AC_PJ", "E_MAC_PJ", "Activity", "ActivityMeter", "LayerActivity", "SynapseActivity"]

E_AC_PJ = 0.9
"""pJ per accumulate (32-bit float add, 45 nm; Horowitz, ISSCC 2014)."""
E_MAC_PJ = 4.6
"""pJ per multiply-accumulate (32-bit float multiply 3.7 pJ + add 0.9 pJ, 45 nm; Horowitz, ISSCC 2014)."""

_POOLS = (AvgPool2d, AdaptiveAvgPool2d, Flatten, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)


@dataclass(frozen=True)
class LayerActivity:
    """One neuron layer, per inference (one sample, all time steps)."""

    name: str
    neurons: int
    neuron_steps: float
    """Neuron updates per sample: neurons × time steps."""
    spikes: float
    """Spikes emitted per sample over all time steps (nonzero outputs, for an ANN twin)."""

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per time step."""
        return self.spikes / self.neuron_steps


@dataclass(frozen=True)
class SynapseActivity:
    """One synaptic layer, per inference: its accumulates (input from spikes) or its MACs (real input)."""

    name: str
    kind: str
    """``"ac"`` or ``"mac"``."""
    ops: float


@dataclass(frozen=True)
class Activity:
    samples: int
    neurons: tuple[LayerActivity, ...]
    synapses: tuple[SynapseActivity, ...]
    e_ac_pj: float = E_AC_PJ
    e_mac_pj: float = E_MAC_PJ

    @property
    def spikes(self) -> float:
        return sum(layer.spikes for layer in self.neurons)

    @property
    def firing_rate(self) -> float:
        """Spikes per neuron per time step over the whole network (NaN without neurons)."""
        steps = sum(layer.neuron_steps for layer in self.neurons)
        return self.spikes / steps if steps else math.nan

    @property
    def acs(self) -> float:
        return sum(s.ops for s in self.synapses if s.kind == "ac")

    @property
    def macs(self) -> float:
        return sum(s.ops for s in self.synapses if s.kind == "mac")

    @property
    def energy_pj(self) -> float:
        return self.acs * self.e_ac_pj + self.macs * self.e_mac_pj

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON: the totals and every layer."""
        return {
            **self.metrics(),
            "e_ac_pj": self.e_ac_pj,
            "e_mac_pj": self.e_mac_pj,
            "neuron_layers": [{**asdict(n), "firing_rate": n.firing_rate} for n in self.neurons],
            "synaptic_layers": [asdict(s) for s in self.synapses],
        }

    def describe(self) -> str:
        """A per-layer table for the terminal."""
        lines = [
            f"activity per inference: {self.spikes:,.0f} spikes (firing rate {self.firing_rate:.4f} per "
            f"neuron per step), {self.acs:,.0f} ACs + {self.macs:,.0f} MACs → "
            f"{self.energy_pj * 1e-6:.4g} µJ ({self.e_ac_pj:g} pJ/AC, {self.e_mac_pj:g} pJ/MAC)"
        ]
        width = max([len(n.name) for n in self.neurons] + [len(s.name) for s in self.synapses] + [5])
        for n in self.neurons:
            lines.append(f"  {n.name:<{width}}  {n.neurons:>9,} neurons  rate {n.firing_rate:.4f}")
        lines += [f"  {s.name:<{width}}  {s.ops:>13,.0f} {s.kind.upper()}s" for s in self.synapses]
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """The per-epoch record's activity keys (``engine.training.records.ACTIVITY_KEYS``)."""
        return {
            "test_firing_rate": self.firing_rate,
            "test_spikes": self.spikes,
            "test_acs": self.acs,
            "test_macs": self.macs,
            "energy_uj": self.energy_pj * 1e-6,
        }


class ActivityMeter:
    """Hooks that count activity while a model runs; ``with ActivityMeter(model, T) as meter: …``, then
    :meth:`result` with the number of samples seen. See the module docstring for what is counted."""

    def __init__(self, model: nn.Module, T: int, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ):
        if not (e_ac_pj > 0 and e_mac_pj > 0):
            raise ValueError(f"energy constants must be > 0 pJ, got e_ac_pj={e_ac_pj}, e_mac_pj={e_mac_pj}")
        self.model, self.T = model, T
        self.e_ac_pj, self.e_mac_pj = e_ac_pj, e_mac_pj
        self._handles: list[Any] = []
        self._spike_tensors: dict[int, tuple[weakref.ref, Tensor, tuple]] = {}
        self._neurons: dict[str, list[Any]] = {}  # name → [device count of nonzero outputs, elements]
        self._synapses: dict[str, list[Any]] = {}  # name → [device AC count, host MAC count, calls]
        self._pulled_back: dict[tuple, Tensor] = {}  # (layer, input size, poolings) → fan-out map

    # -- hooks -------------------------------------------------------------------------------------
    def __enter__(self) -> ActivityMeter:
        for name, module in self.model.named_modules():
            if isinstance(module, BaseNeuron):
                self._neurons[name] = [None, 0]
                self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
            elif isinstance(module, Conv2d | Linear | nn.Conv2d | nn.Linear):
                self._synapses[name] = [None, 0, 0]
                self._handles.append(module.register_forward_hook(self._synapse_hook(name)))
            elif isinstance(module, _POOLS):
                self._handles.append(module.register_forward_hook(self._pool_hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._spike_tensors.clear()

    def _mark(self, tensor: Tensor, spikes: Tensor, pools: tuple = ()) -> None:
        """Remember ``tensor`` as coming from spikes: ``spikes`` counts them per ``[H, W]`` position of
        the neuron's output (a scalar total for a neuron without positions), and ``pools`` lists the
        poolings since, as ``(module, input height, input width)``."""
        if len(self._spike_tensors) > 4096:  # forget the tensors of finished forward passes
            self._spike_tensors = {k: v for k, v in self._spike_tensors.items() if v[0]() is not None}
        self._spike_tensors[id(tensor)] = (weakref.ref(tensor), spikes, pools)

    def _spike_entry(self, tensor: Tensor) -> tuple[Any, Tensor, tuple] | None:
        entry = self._spike_tensors.get(id(tensor))
        return entry if entry is not None and entry[0]() is tensor else None

    def _neuron_hook(self, name: str):
        def hook(module: BaseNeuron, args: tuple[Tensor, ...], out: Tensor) -> None:
            spiking = module.spiking
            # spikes are 0 or 1, so their sum is their count (a float32 sum: exact below 2**24 per
            # position, and several times faster than a nonzero count); an ANN twin's are counted
            per_position = _nonzero_per_position(out, binary=spiking)
            count = per_position.sum(dtype=torch.float64)
            if spiking:
                self._mark(out, per_position if out.dim() >= 4 else count)
            entry = self._neurons[name]
            entry[0] = count if entry[0] is None else entry[0] + count
            entry[1] += out.numel()

        return hook

    def _pool_hook(self, module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        entry = self._spike_entry(args[0]) if args else None
        if entry is None:
            return
        _, spikes, pools = entry
        if isinstance(module, nn.Flatten):
            self._mark(out, spikes, pools)
        elif spikes.dim() == 2 and _poolable(module):
            self._mark(out, spikes, (*pools, (module, *args[0].shape[-2:])))

    def _synapse_hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            x = args[0]
            entry = self._synapses[name]
            entry[2] += 1
            spikes = self._spike_entry(x)
            if spikes is not None:
                acs = self._accumulates(module, x, spikes[1], spikes[2])
                entry[0] = acs if entry[0] is None else entry[0] + acs
            else:
                entry[1] += _dense_macs(module, out)

        return hook

    def _accumulates(self, module: nn.Module, x: Tensor, spikes: Tensor, pools: tuple) -> Tensor:
        """Σ over spikes of the outputs each reaches: the layer's fan-out map, pulled back through the
        poolings between the neuron and the layer (pooling folds into the layer's weights)."""
        if spikes.dim() == 0:
            return spikes * float(module.out_features)
        key = (id(module), tuple(x.shape[-2:]), tuple((id(pool), H, W) for pool, H, W in pools))
        fanout = self._pulled_back.get(key)
        if fanout is None:  # once per layer, input size and poolings: off the per-batch path
            if isinstance(module, nn.Linear):
                H, W = _pooled_size(pools, spikes.shape)
                fanout = torch.full((H, W), float(module.out_features), dtype=torch.float64, device=x.device)
            else:
                assert isinstance(module, nn.Conv2d)
                fanout = _conv_fanout(module, *x.shape[-2:], x.device)
            for pool, H, W in reversed(pools):
                fanout = _pool_adjoint(pool, fanout, H, W)
            self._pulled_back[key] = fanout
        # float64: the products reach 10^8 and more per batch, beyond float32's exact whole numbers
        return torch.dot(spikes.flatten().to(torch.float64), fanout.flatten())

    # -- result ------------------------------------------------------------------------------------
    def result(self, samples: int) -> Activity:
        """Per-sample activity over everything run since entering (one read of the device counters)."""
        if samples <= 0:
            raise ValueError("no samples were measured")
        device_counts = [e[0] for e in self._neurons.values()] + [e[0] for e in self._synapses.values()]
        present = [c for c in device_counts if c is not None]
        values = iter(torch.stack([c.to(torch.float64) for c in present]).tolist() if present else [])
        read = [next(values) if c is not None else 0.0 for c in device_counts]
        n_neurons = len(self._neurons)
        neurons = []
        for (name, (_, elements)), spikes in zip(self._neurons.items(), read[:n_neurons], strict=True):
            if elements:
                steps = elements / samples
                neurons.append(LayerActivity(name, round(steps / self.T), steps, spikes / samples))
        synapses = []
        for (name, (_, macs, calls)), acs in zip(self._synapses.items(), read[n_neurons:], strict=True):
            if not calls:  # a layer this evaluation never ran (a transfer model's static head)
                continue
            if acs or not macs:
                synapses.append(SynapseActivity(name, "ac", acs / samples))
            if macs:
                synapses.append(SynapseActivity(name, "mac", macs / samples))
        return Activity(samples, tuple(neurons), tuple(synapses), self.e_ac_pj, self.e_mac_pj)


def _poolable(pool: nn.Module) -> bool:
    """Poolings whose adjoint :func:`_pool_adjoint` knows: square windows without ceil mode, or a
    global average. Any other pooling ends the spike provenance (the next layer then counts MACs)."""
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return tuple(_pair(pool.output_size)) == (1, 1)
    return isinstance(pool, nn.AvgPool2d) and not pool.ceil_mode


def _pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def _pooled_size(pools: tuple, shape: torch.Size) -> tuple[int, int]:
    H, W = shape[-2:]
    for pool, h, w in pools:
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            H, W = 1, 1
        else:
            (kh, kw), (sh, sw), (ph, pw) = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
            H, W = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return H, W


def _pool_adjoint(pool: nn.Module, fanout: Tensor, H: int, W: int) -> Tensor:
    """The fan-out of each input position of ``pool`` (``[H, W]``): the sum of the fan-outs of the
    pooled positions whose window covers it."""
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return fanout.reshape(1, 1).expand(H, W).clone()
    ones = torch.ones(1, 1, *_pair(pool.kernel_size), dtype=torch.float64, device=fanout.device)
    return torch.nn.grad.conv2d_input(
        (1, 1, H, W), ones, fanout[None, None], _pair(pool.stride), _pair(pool.padding)
    )[0, 0]


def _nonzero_per_position(x: Tensor, binary: bool) -> Tensor:
    """How many entries are nonzero at each of the last two positions (``[H, W]``, float32; a scalar
    for lower-dimensional tensors). ``binary``: the entries are 0 or 1, so a sum counts them; otherwise
    ``sign`` marks the nonzeros of a non-negative tensor, ``|sign|`` of any other. Float32 sums of
    whole counts are exact below 2**24 per position.

    Why the layout matters: a reduction over ``(T, B, C)`` of a channels-last frame stack (C innermost
    in memory) is about 10× slower on the CPU than reading the memory in order. So the dims are taken in
    their memory order: everything outside the first spatial dim is summed as one contiguous block of
    rows, then whatever non-spatial dim lies inside (C of channels-last) — the same numbers.
    """
    marks = x if binary else torch.sign(x).abs()
    if x.dim() < 4:
        return marks.sum(dtype=torch.float32)
    spatial = (x.dim() - 2, x.dim() - 1)
    order = sorted(range(x.dim()), key=lambda d: (-marks.stride(d), d))  # outermost first
    physical = marks.permute(order)
    if not physical.is_contiguous():
        return marks.sum(dim=tuple(range(x.dim() - 2)), dtype=torch.float32)
    first = next(i for i, d in enumerate(order) if d in spatial)
    rows = math.prod(physical.shape[:first])
    inner = physical.reshape(rows, -1).sum(0, dtype=torch.float32).view(physical.shape[first:])
    remaining = order[first:]
    between = [i for i, d in enumerate(remaining) if d not in spatial]
    if between:
        inner = inner.sum(dim=between)
    kept = [d for d in remaining if d in spatial]
    return inner if kept == list(spatial) else inner.transpose(0, 1)


def _out_size(conv: nn.Conv2d, H: int, W: int) -> tuple[int, int]:
    size = []
    for n, k, s, p, d in zip((H, W), conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True):
        size.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
    return size[0], size[1]


def _conv_fanout(conv: nn.Conv2d, H: int, W: int, device: torch.device) -> Tensor:
    """``[H, W]`` float64 (whole numbers, exact): how many (output channel, output position) pairs read
    each input position — the adjoint of the convolution applied to ones."""
    kh, kw = conv.kernel_size
    ones_out = torch.ones(1, 1, *_out_size(conv, H, W), dtype=torch.float64, device=device)
    ones_kernel = torch.ones(1, 1, kh, kw, dtype=torch.float64, device=device)
    coverage = torch.nn.grad.conv2d_input(
        (1, 1, H, W), ones_kernel, ones_out, conv.stride, conv.padding, conv.dilation
    )[0, 0]
    return coverage.round() * (conv.out_channels // conv.groups)


def _dense_macs(module: nn.Module, out: Tensor) -> int:
    if isinstance(module, nn.Linear):
        frames = out.numel() // module.out_features
        return frames * module.in_features * module.out_features
    assert isinstance(module, nn.Conv2d)
    kh, kw = module.kernel_size
    return out.numel() * (module.in_channels // module.groups) * kh * kw
