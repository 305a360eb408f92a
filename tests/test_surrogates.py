"""Surrogate spike functions: strict Heaviside forward, the spec §1.2 derivative backward (via autograd)."""

import math

import pytest
import torch

from engine.surrogates import SURROGATES, create_surrogate

ALL = ["qgate", "backei_gate", "gate", "atan", "sigmoid"]


def test_registry_holds_the_five_surrogates():
    assert SURROGATES.names() == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_forward_is_strict_heaviside(name):
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 1.0], dtype=torch.float64)
    spikes = create_surrogate(name)(x)
    assert spikes.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert spikes.dtype == torch.float64


def autograd_derivative(name: str, alpha: float, points: list[float]) -> list[float]:
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    create_surrogate(name, alpha)(x).sum().backward()
    return x.grad.tolist()


# (name, alpha, x, dS/dx written out by hand from spec §1.2)
CASES = [
    # QGate: α − α²|x| on |x| ≤ 1/α. α = 2: triangle of height 2 and half-width 0.5.
    ("qgate", 2.0, [-0.6, -0.5, -0.25, 0.0, 0.1, 0.25, 0.5, 0.5001, 1.0], [0, 0, 1, 2, 1.6, 1, 0, 0, 0]),
    ("qgate", 4.0, [-0.25, -0.1, 0.0, 0.1, 0.25, 0.3], [0, 2.4, 4, 2.4, 0, 0]),
    # BackEIGate: 1 on |x| < 0.5 whatever α.
    ("backei_gate", 2.0, [-0.5, -0.4999, 0.0, 0.4999, 0.5, 2.0], [0, 1, 1, 1, 0, 0]),
    ("backei_gate", 8.0, [-0.5, -0.4999, 0.0, 0.4999, 0.5], [0, 1, 1, 1, 0]),
    # Gate: 1 on |x| < 1/α.
    ("gate", 2.0, [-0.5, -0.4999, 0.0, 0.4999, 0.5], [0, 1, 1, 1, 0]),
    ("gate", 4.0, [-0.25, -0.2, 0.2, 0.25, 0.4], [0, 1, 1, 0, 0]),
    # Atan: α / (2 (1 + (π/2 α x)²)); α = 2, x = ±1/π gives (π/2·2·x)² = 1 → 2/(2·2) = 0.5.
    ("atan", 2.0, [0.0, 1 / math.pi, -1 / math.pi, 3 / math.pi], [1.0, 0.5, 0.5, 2 / (2 * 10)]),
    # Sigmoid: α σ(αx)(1 − σ(αx)); α = 2, x = ln(3)/2 gives σ = 0.75 → 2·0.75·0.25.
    ("sigmoid", 2.0, [0.0, math.log(3) / 2, -math.log(3) / 2], [0.5, 0.375, 0.375]),
    ("sigmoid", 1.0, [0.0, math.log(3)], [0.25, 0.1875]),
]


@pytest.mark.parametrize(("name", "alpha", "points", "expected"), CASES)
def test_backward_equals_the_spec_formula(name, alpha, points, expected):
    assert autograd_derivative(name, alpha, points) == pytest.approx(expected, abs=1e-12)


def test_gradient_is_scaled_by_the_upstream_gradient():
    x = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    (create_surrogate("qgate")(x) * torch.tensor([3.0, -2.0], dtype=torch.float64)).sum().backward()
    assert x.grad.tolist() == pytest.approx([3 * 1.6, -2 * 1.2])


def test_forward_without_grad_stores_nothing_and_works():
    with torch.no_grad():
        out = create_surrogate("atan")(torch.tensor([0.3, -0.3]))
    assert out.tolist() == [1.0, 0.0]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="qgate") as info:
        create_surrogate("qgat")
    assert "did you mean 'qgate'" in str(info.value)
    for name in ALL:
        assert name in str(info.value)


def test_alpha_must_be_positive():
    with pytest.raises(ValueError, match="alpha"):
        create_surrogate("gate", alpha=0.0)
