"""Losses: CKA against an independent formula, the weighted objective against hand computations, the
derived sign of the coefficient gradient (spec §3.4), label smoothing, and bad input."""

import math

import pytest
import torch

from engine.config import RunConfig
from engine.losses import (
    LossSettings,
    cka_distance,
    compute_loss,
    domain_term_enabled,
    linear_cka,
    step_weights,
)
from engine.models import TransferOutput

F64 = torch.float64


def independent_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) on column-centred features (feature-space form)."""
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    num = torch.linalg.matrix_norm(y.T @ x) ** 2
    return (num / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))).item()


@pytest.mark.parametrize(("b", "dx", "dy"), [(2, 4, 3), (5, 7, 7), (9, 30, 4), (16, 10, 50)])
def test_cka_equals_the_independent_formula(b, dx, dy):
    g = torch.Generator().manual_seed(b)
    x = torch.randn(b, dx, generator=g, dtype=F64)
    y = torch.randn(b, dy, generator=g, dtype=F64) + x[:, :1] * 2.0
    assert linear_cka(x, y).item() == pytest.approx(independent_cka(x, y), abs=1e-6, rel=1e-6)


def test_cka_is_batched_over_time():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 12, generator=g, dtype=F64)
    y = torch.randn(4, 6, 8, generator=g, dtype=F64)
    batched = linear_cka(x, y)
    assert batched.shape == (4,)
    for t in range(4):
        assert batched[t].item() == pytest.approx(independent_cka(x[t], y[t]), abs=1e-6)


def test_cka_identity_scaling_orthogonal_translation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g, dtype=F64)
    y = torch.randn(7, 9, generator=g, dtype=F64)
    q, _ = torch.linalg.qr(torch.randn(9, 9, generator=g, dtype=F64))
    base = linear_cka(x, y).item()
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 3.7 * x).item() == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 0.5 * y).item() == pytest.approx(base, abs=1e-6)
    assert linear_cka(25.0 * x, y).item() == pytest.approx(base, abs=1e-6)
    # (the original's eps = 1e-7 in the denominator breaks invariance only for tiny features)
    assert linear_cka(x, y @ q).item() == pytest.approx(base, abs=1e-6)
    assert linear_cka(x + 4.0, y - 2.0).item() == pytest.approx(base, abs=1e-6)
    assert 0.0 <= base <= 1.0


def test_cka_for_two_samples_is_one():
    # with B = 2 the centred Gram matrices are both rank one and proportional
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 5, generator=g, dtype=F64), torch.randn(2, 3, generator=g, dtype=F64)
    assert linear_cka(x, y).item() == pytest.approx(1.0, abs=1e-6)


def test_cka_in_low_precision_is_computed_in_float32():
    x = torch.randn(3, 6, 20).to(torch.bfloat16)
    out = linear_cka(x, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones(3), atol=1e-3, rtol=0)


def test_cka_distance_flattens_features_and_rejects_mismatched_batches():
    x = torch.randn(2, 4, 3, 2, 2, dtype=F64)
    torch.testing.assert_close(cka_distance(x, x), torch.zeros(2, dtype=F64), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"\(2, 4, 12\) and \(2, 5, 12\)"):
        cka_distance(x, torch.randn(2, 5, 12, dtype=F64))


# ------------------------------------------------------------------------------------------------
# the objective on small tensors, by hand

LABELS = torch.tensor([0, 2, 1])
# T = 2 steps, B = 3 samples, K = 3 classes
LOGITS_S = torch.tensor(
    [
        [[1.0, 0.0, -1.0], [0.5, 0.2, 0.1], [0.3, 0.3, 0.9]],
        [[0.0, 0.0, 0.0], [2.0, -1.0, 0.5], [1.0, 2.0, 0.0]],
    ],
    dtype=F64,
)
LOGITS_E = torch.tensor(
    [
        [[0.3, 0.1, 0.9], [-0.2, 0.4, 1.5], [0.0, 0.7, 0.1]],
        [[1.2, -0.3, 0.0], [0.0, 0.1, 0.2], [0.4, 0.4, -1.0]],
    ],
    dtype=F64,
)
FEAT_S = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 1.0], [0.5, 3.0]]], dtype=F64)
FEAT_E = torch.tensor([[[1.0, 2.0], [3.0, 1.0], [0.0, 0.0]], [[0.5, 0.5], [0.0, 1.0], [2.0, 1.0]]], dtype=F64)


def ce(logits_row, label):
    return -(logits_row[label] - math.log(sum(math.exp(v) for v in logits_row)))


def mse(step_logits, phi):
    values = [v for row in step_logits for v in row]
    return sum((v - phi) ** 2 for v in values) / len(values)


def hand_terms(alpha, beta, lam, phi, reg, fixed=None, legacy=False, tet=True):
    """Spec §3.2/§5 written out with Python floats."""
    T = 2
    ls, le, lab = LOGITS_S.tolist(), LOGITS_E.tolist(), LABELS.tolist()
    ce_s = [sum(ce(ls[t][b], lab[b]) for b in range(3)) / 3 for t in range(T)]
    ce_e = [sum(ce(le[t][b], lab[b]) for b in range(3)) / 3 for t in range(T)]
    mse_s = [mse(ls[t], phi) for t in range(T)]
    mse_e = [mse(le[t], phi) for t in range(T)]
    d = [1.0 - independent_cka(FEAT_S[t], FEAT_E[t]) for t in range(T)]
    assert min(d) > 0.05  # a domain term that actually weighs something
    if not reg:
        w = v = u = [1.0] * T
    elif fixed is None:
        w, v, u = alpha, [1 - a for a in alpha], [1 - a for a in alpha]
    else:
        w, v = [fixed] * T, [1 - fixed] * T
        u = [1 - a for a in alpha] if legacy else [1 - fixed] * T
    if tet:
        static = (1 - lam) * sum(ce_s) / T + lam * sum(mse_s) / T
        event = (1 - lam) * sum(v[t] * ce_e[t] for t in range(T)) / T + lam * sum(
            u[t] * mse_e[t] for t in range(T)
        ) / T
    else:
        mean_s = [[(ls[0][b][k] + ls[1][b][k]) / 2 for k in range(3)] for b in range(3)]
        mean_e = [[(le[0][b][k] + le[1][b][k]) / 2 for k in range(3)] for b in range(3)]
        static = sum(ce(mean_s[b], lab[b]) for b in range(3)) / 3
        event = sum(ce(mean_e[b], lab[b]) for b in range(3)) / 3
    domain = sum(w[t] * d[t] for t in range(T)) / T
    return static, event, domain, static + event + beta * domain


def output():
    return TransferOutput(
        feat_static=FEAT_S, feat_event=FEAT_E, logits_static=LOGITS_S, logits_event=LOGITS_E
    )


@pytest.mark.parametrize(
    "case",
    [
        dict(reg=True),
        dict(reg=False),
        dict(reg=True, fixed=0.3),
        dict(reg=True, fixed=0.3, legacy=True),
        dict(reg=True, tet=False),
        dict(reg=False, tet=False),
    ],
)
def test_weighted_objective_equals_hand_computation(case):
    alpha = [0.7, 0.4]
    settings = LossSettings(
        beta=0.5,
        regularization=case["reg"],
        fixed_coef=case.get("fixed"),
        tet=case.get("tet", True),
        tet_lambda=0.1,
        tet_phi=0.25,
        legacy_tsregular_mse_sigmoid=case.get("legacy", False),
    )
    terms = compute_loss(output(), LABELS, torch.tensor(alpha, dtype=F64), settings=settings)
    static, event, domain, total = hand_terms(alpha, 0.5, 0.1, 0.25, **case)
    assert terms.static.item() == pytest.approx(static, rel=1e-9)
    assert terms.event.item() == pytest.approx(event, rel=1e-9)
    assert terms.domain.item() == pytest.approx(domain, abs=1e-6)
    assert terms.total.item() == pytest.approx(total, abs=1e-6)
    assert terms.cka_distance.shape == (2,)


def test_domain_term_is_logged_but_not_added_when_switched_off():
    feat_e = torch.randn(2, 5, 4, dtype=F64)
    feat_s = torch.randn(2, 5, 4, dtype=F64, requires_grad=True)
    out = TransferOutput(feat_s, feat_e, torch.randn(2, 5, 3, dtype=F64), torch.randn(2, 5, 3, dtype=F64))
    labels = torch.tensor([0, 1, 2, 0, 1])
    on = compute_loss(out, labels, torch.full((2,), 0.6, dtype=F64), add_domain=True)
    off = compute_loss(out, labels, torch.full((2,), 0.6, dtype=F64), add_domain=False)
    assert off.domain.item() == pytest.approx(on.domain.item()) and on.domain.item() > 0
    assert off.total.item() == pytest.approx(on.total.item() - 0.5 * on.domain.item())
    assert not off.domain.requires_grad


def test_event_only_objective():
    logits = LOGITS_E
    tet = compute_loss(logits, LABELS, settings=LossSettings(tet_lambda=0.1, tet_phi=0.25))
    _, event, _, _ = hand_terms([0.5, 0.5], 0.5, 0.1, 0.25, reg=False)
    assert tet.total.item() == pytest.approx(event) and tet.event.item() == pytest.approx(event)
    assert tet.static.item() == 0.0 and tet.domain.item() == 0.0 and tet.cka_distance.shape == (0,)
    plain = compute_loss(logits, LABELS, settings=LossSettings(tet=False))
    _, event_plain, _, _ = hand_terms([0.5, 0.5], 0.5, 0.1, 0.25, reg=False, tet=False)
    assert plain.total.item() == pytest.approx(event_plain)


@pytest.mark.parametrize("smoothing", [0.1, 0.25])
def test_label_smoothing_matches_timm(smoothing):
    """timm's LabelSmoothingCrossEntropy: (1 − s)·NLL + s·mean_k(−log p_k); equal to torch's."""
    logits = torch.randn(1, 6, 5, dtype=F64)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    got = compute_loss(logits, labels, settings=LossSettings(tet=False, smoothing=smoothing)).total
    logp = torch.log_softmax(logits[0], dim=-1)
    nll = -logp.gather(1, labels[:, None]).squeeze(1)
    expected = ((1 - smoothing) * nll + smoothing * (-logp.mean(dim=-1))).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def coefficient_gradient(settings, c, feats_equal=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    T, Bn, K = c.numel(), 6, 10
    feat_s = torch.randn(T, Bn, 8, generator=g, dtype=F64)
    feat_e = feat_s.clone() if feats_equal else torch.randn(T, Bn, 8, generator=g, dtype=F64)
    out = TransferOutput(
        feat_s,
        feat_e,
        torch.randn(T, Bn, K, generator=g, dtype=F64),
        torch.randn(T, Bn, K, generator=g, dtype=F64),
    )
    labels = torch.randint(0, K, (Bn,), generator=g)
    c = c.clone().requires_grad_()
    terms = compute_loss(out, labels, torch.sigmoid(c), settings=settings)
    (grad,) = torch.autograd.grad(terms.total, c)
    return grad, out, labels, terms


def test_coefficient_gradient_matches_the_derived_formula():
    """∂L/∂c_t = σ'(c_t)·[β d_t − (1−λ) CE^e_t − λ MSE^e_t] / T  (spec §3.4)."""
    settings = LossSettings(beta=0.5, regularization=True, tet=True, tet_lambda=1e-3, tet_phi=0.5)
    c = torch.tensor([1.0, 0.0, -2.0], dtype=F64)
    grad, out, labels, terms = coefficient_gradient(settings, c)
    T = 3
    ce_e = (
        torch.nn.functional.cross_entropy(out.logits_event.flatten(0, 1), labels.repeat(T), reduction="none")
        .view(T, -1)
        .mean(1)
    )
    mse_e = (out.logits_event - 0.5).square().mean(dim=(1, 2))
    s = torch.sigmoid(c)
    expected = s * (1 - s) * (0.5 * terms.cka_distance - (1 - 1e-3) * ce_e - 1e-3 * mse_e) / T
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)
    # early in training CE^e ≈ ln K ≫ β·d_t ≤ 0.5: descent raises α_t (negative gradient)
    assert (ce_e > 0.5 * terms.cka_distance).all() and (grad < 0).all()


def test_regularization_without_tet_only_pushes_alpha_down():
    settings = LossSettings(regularization=True, tet=False)
    grad, *_ = coefficient_gradient(settings, torch.zeros(4, dtype=F64))
    assert (grad > 0).all()  # descent lowers α_t: the degenerate case of spec §3.4


def test_step_weights_table():
    alpha = torch.tensor([0.2, 0.9])
    w, v, u = step_weights(alpha, 2, LossSettings(regularization=False))
    assert w.tolist() == v.tolist() == u.tolist() == [1.0, 1.0]
    w, v, u = step_weights(alpha, 2, LossSettings(regularization=True))
    assert (
        w.tolist() == pytest.approx([0.2, 0.9])
        and v.tolist() == pytest.approx([0.8, 0.1])
        and u.tolist() == v.tolist()
    )
    w, v, u = step_weights(alpha, 2, LossSettings(regularization=True, fixed_coef=0.25))
    assert w.tolist() == [0.25, 0.25] and v.tolist() == [0.75, 0.75] and u.tolist() == [0.75, 0.75]
    w, v, u = step_weights(
        alpha, 2, LossSettings(regularization=True, fixed_coef=0.25, legacy_tsregular_mse_sigmoid=True)
    )
    assert u.tolist() == pytest.approx([0.8, 0.1])


def test_bad_input():
    out = output()
    with pytest.raises(ValueError, match="alpha"):
        compute_loss(out, LABELS, None, settings=LossSettings(regularization=True))
    with pytest.raises(ValueError, match=r"shape \[T\] = \[2\]"):
        compute_loss(out, LABELS, torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=r"labels \(2,\)"):
        compute_loss(out, torch.tensor([0, 1]), torch.ones(2, dtype=F64))


def test_settings_and_domain_switch_from_config():
    config = RunConfig().with_overrides({"model.v_th": 0.4, "method.tet_lambda": 0.01})
    settings = LossSettings.from_config(config)
    assert settings.tet_phi == 0.4 and settings.tet_lambda == 0.01 and settings.regularization
    assert domain_term_enabled(config)
    step = config.with_overrides({"sliding.schedule": "step"})
    assert domain_term_enabled(step)
    assert not domain_term_enabled(step.with_overrides({"method.legacy_nosliding_drops_domain": True}))
    assert not domain_term_enabled(config.with_overrides({"method.domain_loss": False}))
