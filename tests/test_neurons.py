"""Neurons: hand-computed LIF/IF/PLIF sequences, detached hard reset, declared state, both step modes."""

import math

import pytest
import torch

from engine.neurons import NEURONS, IFNode, LIFNode, PLIFNode, create_neuron, reset_neurons


def run_single(node, inputs):
    spikes, mems = [], []
    for x in inputs:
        spikes.append(node(torch.tensor([x], dtype=torch.float64)).item())
        mems.append(node.mem.item())
    return spikes, mems


def test_registry_holds_lif_if_plif_and_the_ann_twin():
    assert NEURONS.names() == ["if", "lif", "plif", "relu"]
    assert [NEURONS.get(n).spiking for n in NEURONS.names()] == [True, True, True, False]


def test_lif_sequence_by_hand():
    # τ = 2, V_th = 0.5: m ← m + (x − m)/2, spike when m > 0.5 (strictly), then m ← 0.
    #   x = 0.6: m = 0.3             x = 0.6: m = 0.3 + 0.15 = 0.45      x = 0.2: m = 0.45 − 0.125 = 0.325
    #   x = 1.4: m = 0.8625 → spike, 0      x = 0.0: m = 0
    #   x = 1.0: m = 0.5 = V_th → no spike (strict >)      x = 1.0: m = 0.5 + 0.25 = 0.75 → spike, 0
    spikes, mems = run_single(LIFNode(tau=2.0, v_th=0.5), [0.6, 0.6, 0.2, 1.4, 0.0, 1.0, 1.0])
    assert spikes == [0, 0, 0, 1, 0, 0, 1]
    assert mems == pytest.approx([0.3, 0.45, 0.325, 0.0, 0.0, 0.5, 0.0], abs=1e-15)


def test_if_sequence_by_hand():
    # m ← m + x: 0.3, 0.6 → spike → 0, 0.3, then 0.3 + 0.2 = 0.5 → no spike.
    spikes, mems = run_single(IFNode(v_th=0.5), [0.3, 0.3, 0.3, 0.2])
    assert spikes == [0, 1, 0, 0]
    assert mems == pytest.approx([0.3, 0.0, 0.3, 0.5])


def test_plif_starts_as_lif_with_the_same_tau_and_learns_w():
    plif, lif = PLIFNode(tau=3.0), LIFNode(tau=3.0)
    assert plif.w.item() == pytest.approx(-math.log(2.0))
    assert torch.sigmoid(plif.w).item() == pytest.approx(1 / 3)
    xs = [0.9, 0.8, 0.1, 2.0, 0.4]
    sp, mp = run_single(plif, xs)
    sl, ml = run_single(lif, xs)
    assert sp == sl and mp == pytest.approx(ml)
    plif.reset()
    x = torch.full((4,), 0.5, requires_grad=True)
    out = sum(plif(x).sum() for _ in range(3)) + plif.mem.sum()
    out.backward()
    assert plif.w.grad is not None and plif.w.grad != 0


def test_reset_path_carries_no_gradient():
    # x = 1.2 → m = 0.6 > 0.5 fires; m − V_th = 0.1, QGate' = 2 − 4·0.1 = 1.6.
    node = LIFNode()
    x = torch.tensor([1.2], dtype=torch.float64, requires_grad=True)
    spike = node(x)
    (grad_mem,) = torch.autograd.grad(node.mem.sum(), x, retain_graph=True)
    assert grad_mem.item() == 0.0  # detached reset: (1 − s)·∂m/∂x = 0, no −m·∂s/∂x term
    (grad_spike,) = torch.autograd.grad(spike.sum(), x)
    assert grad_spike.item() == pytest.approx(1.6 * 0.5)  # surrogate' · ∂m/∂x with ∂m/∂x = 1/τ


def test_full_bptt_through_the_membrane():
    node = LIFNode()
    x0 = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    node(x0)  # m = 0.2, no spike
    node(torch.tensor([0.4], dtype=torch.float64))  # m = 0.2 + 0.1 = 0.3
    (grad,) = torch.autograd.grad(node.mem.sum(), x0)
    assert grad.item() == pytest.approx(0.25)  # (1/τ)·(1 − 1/τ)


@pytest.mark.parametrize("name", ["lif", "if", "plif"])
def test_multi_step_equals_single_step(name):
    torch.manual_seed(0)
    x = torch.rand(6, 3, 5, dtype=torch.float64, requires_grad=True)
    single = create_neuron(name, record_mem=True)
    multi = create_neuron(name, step_mode="m", record_mem=True)
    out_s, mems = [], []
    for t in range(6):
        out_s.append(single(x[t]))
        mems.append(single.mem)
    out_s = torch.stack(out_s)
    out_m = multi(x)
    assert out_m.sum() > 0
    torch.testing.assert_close(out_m, out_s, rtol=0, atol=0)
    torch.testing.assert_close(multi.mem_seq, torch.stack(mems), rtol=0, atol=0)
    torch.testing.assert_close(multi.mem, single.mem, rtol=0, atol=0)
    (g_s,) = torch.autograd.grad((out_s * torch.arange(6.0)[:, None, None]).sum() + single.mem.sum(), x)
    (g_m,) = torch.autograd.grad((out_m * torch.arange(6.0)[:, None, None]).sum() + multi.mem.sum(), x)
    torch.testing.assert_close(g_m, g_s, rtol=0, atol=1e-15)


def test_reset_restores_declared_state():
    node = create_neuron("lif", step_mode="m", record_mem=True)
    node(torch.ones(2, 3))
    assert torch.is_tensor(node.mem) and node.mem_seq is not None
    container = torch.nn.Sequential(torch.nn.Identity(), node)
    reset_neurons(container)
    assert node.mem == 0.0 and node.mem_seq is None
    assert set(node._memories) == {"mem", "mem_seq"}


def test_state_carries_over_between_calls_until_reset():
    node = LIFNode()
    node(torch.tensor([0.6]))
    assert node.mem.item() == pytest.approx(0.3)
    node(torch.tensor([0.6]))
    assert node.mem.item() == pytest.approx(0.45)
    node.reset()
    node(torch.tensor([0.6]))
    assert node.mem.item() == pytest.approx(0.3)


def test_threshold_and_surrogate_are_not_parameters():
    assert list(LIFNode().parameters()) == []
    assert [n for n, _ in PLIFNode().named_parameters()] == ["w"]


def test_bad_names_and_settings():
    with pytest.raises(ValueError, match="valid neuron names: if, lif, plif"):
        create_neuron("lfi")
    with pytest.raises(ValueError, match="valid surrogate names"):
        create_neuron("lif", surrogate="nope")
    with pytest.raises(ValueError, match="step_mode"):
        create_neuron("lif", step_mode="x")
    with pytest.raises(ValueError, match="tau"):
        LIFNode(tau=1.0)
    assert isinstance(create_neuron("if", tau=5.0), IFNode)  # IF has no leak; tau is ignored
