"""The training objective: classification (TET or mean-over-time CE) plus the CKA transfer loss.

Everything here stays on the device and returns tensors: no ``.item()``, no host synchronisation, so
the trainer can log terms whenever it chooses to sync.

Objective of a transfer model (spec §3, §5), with per-step outputs o_t, labels y, ``α_t = σ(c_t)``::

    d_t     = 1 − CKA(f^s_t, f^e_t)                                   per-step CKA distance
    L_dom   = (1/T) Σ_t w_t · d_t
    TET:  L_s = (1−λ)(1/T) Σ_t CE(o^s_t, y)       + λ (1/T) Σ_t MSE(o^s_t, φ)
          L_e = (1−λ)(1/T) Σ_t v_t · CE(o^e_t, y) + λ (1/T) Σ_t u_t · MSE(o^e_t, φ)
    no TET: L_s = CE(mean_t o^s_t, y),  L_e = CE(mean_t o^e_t, y)
    L = L_s + L_e + β · L_dom   (the domain term only when ``add_domain``)

Weights (spec §3.2, §5, §11 item 2):

=====================================  =======  =========  =====================================
setting                                 w_t      v_t        u_t
=====================================  =======  =========  =====================================
no regularization                       1        1          1
regularization                          α_t      1 − α_t    1 − α_t
regularization + fixed_coef r           r        1 − r      1 − r (legacy switch: 1 − α_t)
=====================================  =======  =========  =====================================

``fixed_coef`` only has an effect together with ``regularization``, as the original ``--tsregular``.
Whether β·L_dom is added is the caller's decision (``add_domain``): the trainer derives it from
``method.domain_loss`` and the legacy ``--no-sliding-training`` behaviour
(:func:`domain_term_enabled`). L_dom is computed and returned either way, for logging.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.models.base import TransferOutput

if TYPE_CHECKING:
    from engine.config import RunConfig

__all__ = [
    "LossSettings",
    "LossTerms",
    "cka_distance",
    "compute_loss",
    "domain_term_enabled",
    "linear_cka",
    "step_weights",
]

CKA_EPS = 1e-7
"""Added to the CKA denominator, as the original ``CKA.py``."""


# --------------------------------------------------------------------------------------------------
# CKA


def linear_cka(x: Tensor, y: Tensor, eps: float = CKA_EPS) -> Tensor:
    """Linear CKA between the rows of ``x [..., B, Dx]`` and ``y [..., B, Dy]``; returns ``[...]``.

    Biased HKH centring of the B×B Gram matrices (``H = I − 11ᵀ/B``), then
    ``⟨K_c, L_c⟩_F / (‖K_c‖_F ‖L_c‖_F + eps)``. Leading dimensions are batched, so ``[T, B, D]``
    features give all T per-step values in one call. Computed in at least float32 (also under
    autocast), and without the original's host-side symmetry check. Works for any B ≥ 2 (B = 1 has
    no centred similarity structure: the result is 0).
    """
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(
            "CKA needs features with the same leading (…, B) shape; "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.to(dtype), y.to(dtype)
        k = _center_gram(x @ x.transpose(-1, -2))
        l = _center_gram(y @ y.transpose(-1, -2))
        hsic = (k * l).sum(dim=(-1, -2))
        norms = torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l)
        return hsic / (norms + eps)


def _center_gram(gram: Tensor) -> Tensor:
    """``H G H`` for a batch of symmetric Gram matrices, via row/column means."""
    row = gram.mean(dim=-1, keepdim=True)
    col = gram.mean(dim=-2, keepdim=True)
    total = gram.mean(dim=(-1, -2), keepdim=True)
    return gram - row - col + total


def cka_distance(feat_static: Tensor, feat_event: Tensor) -> Tensor:
    """Per-step distance ``d_t = 1 − CKA_t`` for features ``[T, B, ...]``; returns ``[T]``."""
    return 1.0 - linear_cka(feat_static.flatten(2), feat_event.flatten(2)).abs()


# --------------------------------------------------------------------------------------------------
# settings and result


@dataclass(frozen=True)
class LossSettings:
    """The objective's knobs (``method.*`` of the run config, spec §3, §5)."""

    beta: float = 0.5
    """Weight β of the domain term."""
    regularization: bool = True
    """Weight step t's domain term by α_t and its event terms by 1 − α_t."""
    fixed_coef: float | None = None
    """With ``regularization``: a fixed r instead of α_t (the original ``--tsregular r``)."""
    tet: bool = True
    tet_lambda: float = 1e-3
    """λ, the TET MSE weight (the original's hard-coded ``lamb``)."""
    tet_phi: float = 0.5
    """φ, the TET MSE target (the original ties it to the threshold)."""
    smoothing: float = 0.0
    """Label smoothing of every cross-entropy (timm's ``LabelSmoothingCrossEntropy`` ≡ torch's)."""
    legacy_tsregular_mse_sigmoid: bool = False
    """Spec §11 item 2: with ``fixed_coef`` the event MSE weight stays 1 − σ(c_t)."""

    @classmethod
    def from_config(cls, config: RunConfig) -> LossSettings:
        m = config.method
        return cls(
            beta=m.beta,
            regularization=m.regularization,
            fixed_coef=m.fixed_coef,
            tet=m.tet,
            tet_lambda=m.tet_lambda,
            tet_phi=config.tet_phi,
            smoothing=m.smoothing,
            legacy_tsregular_mse_sigmoid=m.legacy_tsregular_mse_sigmoid,
        )


def domain_term_enabled(config: RunConfig) -> bool:
    """Whether β·L_dom joins the objective: ``method.domain_loss``, unless the legacy switch drops it.

    The original silently dropped the domain loss under ``--no-sliding-training`` (the ``step``
    schedule); ``method.legacy_nosliding_drops_domain`` reproduces that (spec §11 item 1).
    """
    drops = config.method.legacy_nosliding_drops_domain and config.sliding.schedule == "step"
    return config.method.domain_loss and not drops


@dataclass
class LossTerms:
    """The objective and its parts, all tensors on the training device (0-d unless noted)."""

    total: Tensor
    static: Tensor
    """L_s (zero for event-only models)."""
    event: Tensor
    """L_e."""
    domain: Tensor
    """L_dom, the weighted mean CKA distance — computed even when not added to ``total``."""
    cka_distance: Tensor
    """``[T]`` unweighted per-step ``1 − CKA`` (shape ``[0]`` for event-only models)."""


# --------------------------------------------------------------------------------------------------
# the objective


def step_weights(
    alpha: Tensor | None, T: int, settings: LossSettings, device: torch.device | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-step weights ``(w, v, u)``, each ``[T]``: domain, event CE, event MSE (module table)."""
    if not settings.regularization:
        one = torch.ones(T, device=device if alpha is None else alpha.device)
        return one, one, one
    if alpha is None:
        raise ValueError("regularization needs alpha = model.alpha() (the learnable coefficients)")
    if alpha.shape != (T,):
        raise ValueError(f"alpha must have shape [T] = [{T}], got {tuple(alpha.shape)}")
    if settings.fixed_coef is None:
        return alpha, 1.0 - alpha, 1.0 - alpha
    r = torch.full_like(alpha, settings.fixed_coef)
    u = 1.0 - alpha if settings.legacy_tsregular_mse_sigmoid else 1.0 - r
    return r, 1.0 - r, u


def _at_least_fp32(x: Tensor) -> Tensor:
    """Losses of bf16 logits are computed in float32 (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _per_step_ce(logits: Tensor, labels: Tensor, smoothing: float) -> Tensor:
    """``[T]`` mean cross-entropy of each step's logits ``[T, B, K]``."""
    T, B = logits.shape[:2]
    ce = F.cross_entropy(
        _at_least_fp32(logits.flatten(0, 1)), labels.repeat(T), reduction="none", label_smoothing=smoothing
    )
    return ce.view(T, B).mean(dim=1)


def _per_step_mse(logits: Tensor, phi: float) -> Tensor:
    """``[T]`` mean squared distance of each step's B×K logits to the constant φ."""
    return (_at_least_fp32(logits) - phi).square().mean(dim=(1, 2))


def _stream_loss(
    logits: Tensor, labels: Tensor, settings: LossSettings, v: Tensor | None = None, u: Tensor | None = None
) -> Tensor:
    if not settings.tet:
        mean_logits = _at_least_fp32(logits).mean(dim=0)
        return F.cross_entropy(mean_logits, labels, label_smoothing=settings.smoothing)
    ce = _per_step_ce(logits, labels, settings.smoothing)
    mse = _per_step_mse(logits, settings.tet_phi)
    if v is not None:
        ce = ce * v
    if u is not None:
        mse = mse * u
    lam = settings.tet_lambda
    return (1.0 - lam) * ce.mean() + lam * mse.mean()


def _check_labels(logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 3 or labels.shape != logits.shape[1:2]:
        raise ValueError(
            f"expected logits [T, B, K] and labels [B]; got logits {tuple(logits.shape)} "
            f"and labels {tuple(labels.shape)}"
        )


def compute_loss(
    output: TransferOutput | Tensor,
    labels: Tensor,
    alpha: Tensor | None = None,
    *,
    settings: LossSettings = LossSettings(),
    add_domain: bool = True,
) -> LossTerms:
    """The whole objective of one batch.

    Args:
        output: a transfer model's :class:`TransferOutput`, or an event-only model's logits
            ``[T, B, K]`` (the ``main.py`` baseline objective: TET or mean-CE on the event stream only).
        labels: ``[B]`` int64 class indices (the same for both streams: pairs are drawn by class).
        alpha: ``model.alpha()`` (``[T]``); needed when ``settings.regularization`` is on.
        settings: the objective's knobs.
        add_domain: add β·L_dom to ``total`` (see :func:`domain_term_enabled`).
    """
    if isinstance(output, Tensor):
        _check_labels(output, labels)
        event = _stream_loss(output, labels, settings)
        zero = event.new_zeros(())
        return LossTerms(total=event, static=zero, event=event, domain=zero, cka_distance=event.new_zeros(0))

    _check_labels(output.logits_event, labels)
    _check_labels(output.logits_static, labels)
    T = output.logits_event.shape[0]
    w, v, u = step_weights(alpha, T, settings, device=output.logits_event.device)

    # without add_domain, L_dom is logged only: keep it out of the autograd graph
    with contextlib.nullcontext() if add_domain else torch.no_grad():
        distance = cka_distance(output.feat_static, output.feat_event)
        domain = (w * distance).mean()

    static = _stream_loss(output.logits_static, labels, settings)
    event = _stream_loss(output.logits_event, labels, settings, v=v, u=u)  # v, u: TET terms only
    total = static + event
    if add_domain:
        total = total + settings.beta * domain
    return LossTerms(total=total, static=static, event=event, domain=domain, cka_distance=distance.detach())
