"""Spike counts, firing rates, AC and MAC counts and energy (engine.activity), exactly, on hand-built nets."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from engine.activity import E_AC_PJ, E_MAC_PJ, ActivityMeter, _conv_fanout
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.models import create_model, list_models
from engine.models.layers import AvgPool2d, Conv2d, Flatten, Linear, set_step_mode
from engine.neurons import BaseNeuron, ReLUNode, create_neuron, reset_neurons


def _tiny(step_mode: str) -> nn.Sequential:
    """conv(1→2, 3×3, pad 1) → IF → conv(2→1, 3×3, pad 1) → IF → avgpool 2 → flatten → linear(4→3).

    Weights by hand: the first conv's channel 0 sums its 3×3 neighbourhood (≥ 4 > V_th everywhere on
    a frame of ones), channel 1 subtracts it (never fires); the second conv sums both channels.
    """
    net = nn.Sequential(
        Conv2d(1, 2, kernel_size=3, padding=1, bias=False),
        create_neuron("if", v_th=0.5),
        Conv2d(2, 1, kernel_size=3, padding=1, bias=False),
        create_neuron("if", v_th=0.5),
        AvgPool2d(2),
        Flatten(),
        Linear(4, 3, bias=False),
    )
    with torch.no_grad():
        net[0].weight[0].fill_(1.0)
        net[0].weight[1].fill_(-1.0)
        net[2].weight.fill_(1.0)
        net[6].weight.fill_(0.5)
    return set_step_mode(net, step_mode)


def _frames(batch: int) -> torch.Tensor:
    """``[T=2, B, 1, 4, 4]``: a frame of ones, then an empty frame."""
    x = torch.zeros(2, batch, 1, 4, 4)
    x[0] = 1.0
    return x


def _run(net: nn.Sequential, x: torch.Tensor, step_mode: str) -> None:
    reset_neurons(net)
    if step_mode == "m":
        net(x)
    else:
        for t in range(x.shape[0]):
            net(x[t])


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_counts_on_a_hand_built_network(step_mode):
    net = _tiny(step_mode)
    with ActivityMeter(net, T=2) as meter, torch.no_grad():
        _run(net, _frames(batch=3), step_mode)
    activity = meter.result(samples=3)

    # Neurons. Layer 1: 2×4×4 = 32 neurons, 64 neuron-steps; channel 0 fires everywhere at t = 0 (hard
    # reset, then an empty frame), channel 1 never: 16 spikes. Layer 2: 16 neurons, fires everywhere
    # at t = 0: 16 spikes of 32 neuron-steps.
    first, second = activity.neurons
    assert (first.name, first.neurons, first.neuron_steps, first.spikes) == ("1", 32, 64, 16)
    assert (second.name, second.neurons, second.neuron_steps, second.spikes) == ("3", 16, 32, 16)
    assert (first.firing_rate, second.firing_rate) == (0.25, 0.5)
    assert activity.spikes == 32 and activity.firing_rate == 32 / 96

    # Synapses. The first conv reads real-valued frames: dense MACs, 2 frames × 2 out channels × 16
    # positions × 1 in channel × 9 = 576, whatever the values. The second conv reads spikes: each of
    # the 16 spikes adds its weight into every output that reads it — 4 at a corner, 6 on an edge, 9
    # inside (padding): 4·4 + 8·6 + 4·9 = 100 ACs. The linear layer reads the second layer's spikes
    # through the 2×2 average pool (which folds into its weights): each of the 16 spikes reaches its
    # pooled position's 3 outputs: 48 ACs.
    by_name = {(s.name, s.kind): s.ops for s in activity.synapses}
    assert by_name == {("0", "mac"): 576, ("2", "ac"): 100, ("6", "ac"): 48}
    assert (activity.acs, activity.macs) == (148, 576)
    assert activity.energy_pj == pytest.approx(148 * 0.9 + 576 * 4.6, rel=1e-15)
    metrics = activity.metrics()
    assert metrics["energy_uj"] == pytest.approx(2782.8e-6, rel=1e-12)
    assert (metrics["test_acs"], metrics["test_macs"], metrics["test_spikes"]) == (148, 576, 32)
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)


def test_energy_constants_are_configurable_and_positive():
    net = _tiny("m")
    with ActivityMeter(net, T=2, e_ac_pj=1.0, e_mac_pj=2.0) as meter, torch.no_grad():
        _run(net, _frames(batch=1), "m")
    assert meter.result(samples=1).energy_pj == 148 * 1.0 + 576 * 2.0
    with pytest.raises(ValueError, match="energy constants must be > 0"):
        ActivityMeter(net, T=2, e_ac_pj=0.0)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups"), [(2, 1, 1, 1), (1, 0, 2, 1), (2, 2, 1, 2)]
)
def test_fanout_map_equals_a_brute_force_count(stride, padding, dilation, groups):
    """Fan-out of every input position = the (output channel, output position) pairs whose receptive
    field covers it, counted by enumerating the convolution's index arithmetic."""
    conv = Conv2d(4, 6, kernel_size=3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    H, W = 7, 6
    fanout = _conv_fanout(conv, H, W, torch.device("cpu"))
    Ho = (H + 2 * padding - dilation * 2 - 1) // stride + 1
    Wo = (W + 2 * padding - dilation * 2 - 1) // stride + 1
    expected = torch.zeros(H, W, dtype=torch.int64)
    for oy, ox, ky, kx in itertools.product(range(Ho), range(Wo), range(3), range(3)):
        iy, ix = oy * stride - padding + ky * dilation, ox * stride - padding + kx * dilation
        if 0 <= iy < H and 0 <= ix < W:
            expected[iy, ix] += 6 // groups
    assert torch.equal(fanout, expected)


def test_a_head_reading_real_values_counts_macs():
    """A linear layer fed by normalised real values (ResNet's head) does multiply-accumulates."""
    net = set_step_mode(nn.Sequential(Linear(5, 2, bias=False)), "m")
    with ActivityMeter(net, T=3) as meter, torch.no_grad():
        net(torch.randn(3, 4, 5))
    activity = meter.result(samples=4)
    assert [(s.kind, s.ops) for s in activity.synapses] == [("mac", 3 * 5 * 2)]
    assert activity.neurons == () and activity.acs == 0


def test_hooks_are_removed_and_the_outputs_unchanged():
    net = _tiny("m")
    x = _frames(batch=2)
    with torch.no_grad():
        reset_neurons(net)
        plain = net(x)
        with ActivityMeter(net, T=2):
            reset_neurons(net)
            measured = net(x)
    assert torch.equal(plain, measured)
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("name", list_models())
def test_every_model_counts_the_same_on_the_fast_and_the_reference_path(name):
    """The layer-by-layer path (``m``) and the step-by-step reference (``s``) see the same spikes, so
    they must count the same activity, exactly; a transfer model's static head never runs here."""
    torch.manual_seed(0)
    fast = create_model(name, num_classes=5, T=3, width=0.125, input_size=16, step_mode="m")
    reference = create_model(name, num_classes=5, T=3, width=0.125, input_size=16, step_mode="s")
    reference.load_state_dict(fast.state_dict())
    x = (torch.rand(4, 3, 2, 16, 16) < 0.3).float() * 2.0  # event counts
    counts = []
    for model in (fast, reference):
        model.eval()
        with ActivityMeter(model, T=3) as meter, torch.no_grad():
            reset_neurons(model)
            model.forward_event(x)
        counts.append(meter.result(samples=4))
    a, b = counts
    assert [(n.name, n.neurons, n.spikes) for n in a.neurons] == [
        (n.name, n.neurons, n.spikes) for n in b.neurons
    ]
    assert a.synapses == b.synapses and a.acs > 0 and a.spikes > 0
    names = {s.name for s in a.synapses}
    assert not names & {"rgb_fc", "static_fc"}, names
    first = next(m for n, m in fast.named_modules() if isinstance(m, nn.Conv2d))
    kh, kw = first.kernel_size
    macs = [s for s in a.synapses if s.kind == "mac"]
    assert macs[0].ops == pytest.approx(3 * first.out_channels * _out_pixels(first, 16) * 2 * kh * kw)


def _out_pixels(conv: nn.Conv2d, side: int) -> int:
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return ((side + 2 * ph - kh) // sh + 1) * ((side + 2 * pw - kw) // sw + 1)


@pytest.mark.parametrize("key", ["energy.e_ac_pj", "energy.e_mac_pj"])
@pytest.mark.parametrize("value", [0, -0.9])
def test_energy_constants_at_or_below_zero_are_rejected_at_validation(key, value):
    with pytest.raises(ConfigError) as error:
        RunConfig().with_overrides({key: value}).validate()
    assert f"{key} = {float(value)} must be > 0" in str(error.value)


@pytest.mark.parametrize("name", list_models())
def test_the_ann_twin_has_the_snn_topology_and_does_macs_only(name):
    """``neuron: relu`` keeps every layer and parameter of the SNN (same state-dict keys and shapes),
    swaps only the neurons, and its layers all multiply-accumulate real activations."""
    kwargs = dict(num_classes=5, T=2, width=0.125, input_size=16, step_mode="m")
    snn, ann = create_model(name, neuron="lif", **kwargs), create_model(name, neuron="relu", **kwargs)
    shapes = {k: tuple(v.shape) for k, v in snn.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ann.state_dict().items()}
    assert sum(p.numel() for p in snn.parameters()) == sum(p.numel() for p in ann.parameters())
    swapped = [(n, type(a).__name__) for (n, a) in ann.named_modules() if isinstance(a, ReLUNode)]
    neurons = [n for n, m in snn.named_modules() if isinstance(m, BaseNeuron)]
    assert [n for n, _ in swapped] == neurons and neurons
    others = [(n, type(m)) for n, m in snn.named_modules() if not isinstance(m, BaseNeuron)]
    assert others == [(n, type(m)) for n, m in ann.named_modules() if not isinstance(m, BaseNeuron)]

    ann.eval()
    x = torch.rand(3, 2, 2, 16, 16)
    with ActivityMeter(ann, T=2) as meter, torch.no_grad():
        reset_neurons(ann)
        logits = ann.forward_event(x)
    activity = meter.result(samples=3)
    assert logits.shape == (2, 3, 5) and torch.isfinite(logits).all()
    assert activity.acs == 0 and activity.macs > 0
    assert {s.kind for s in activity.synapses} == {"mac"}
    # the same layers run as the SNN's: the dense MAC count is the SNN's synaptic work at full density
    snn.eval()
    with ActivityMeter(snn, T=2) as snn_meter, torch.no_grad():
        reset_neurons(snn)
        snn.forward_event(x)
    assert [s.name for s in snn_meter.result(samples=3).synapses] == [s.name for s in activity.synapses]


def test_relu_is_a_valid_neuron_in_a_run_config():
    config = RunConfig().with_overrides({"model.neuron": "relu"}).validate()
    assert config.model.neuron == "relu"


@pytest.mark.parametrize("binary", [True, False])
def test_per_position_counts_follow_the_memory_layout_exactly(binary):
    """The layout-aware reduction counts the same as the plain one for every frame layout the models
    use: batch-major and time-major, NCHW and channels-last, one step or many."""
    from engine.activity import _nonzero_per_position  # noqa: PLC0415
    from engine.models.layers import time_major_channels_last  # noqa: PLC0415

    torch.manual_seed(0)
    x = (torch.rand(3, 4, 5, 6, 7) < 0.3).float() * (1.0 if binary else torch.rand(3, 4, 5, 6, 7))
    layouts = {
        "time-major": x,
        "batch-major view": x.transpose(0, 1).contiguous().transpose(0, 1),
        "channels-last time-major": time_major_channels_last(x),
        "one step, channels-last": x[0].contiguous(memory_format=torch.channels_last),
        "one step, transposed H W": x[0].transpose(-1, -2).contiguous().transpose(-1, -2),
    }
    for name, y in layouts.items():
        expected = torch.count_nonzero(y, dim=tuple(range(y.dim() - 2))).float()
        assert torch.equal(_nonzero_per_position(y, binary), expected), name
