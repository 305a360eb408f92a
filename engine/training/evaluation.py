"""Evaluation: the event branch on the event test split, mean of the logits over time (spec §2.4, §8).

Only ``forward_event`` runs — the original evaluated ``model(x_event, x_event)`` and threw the static
branch away (spec §11 item 22), doubling the cost. The test loss is the cross-entropy of the
time-averaged logits, the original's ``eval loss``. Everything is summed on the device and read back
once at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from engine.training.runtime import autocast

__all__ = ["evaluate", "topk_correct"]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """Number of samples whose label is among the top-k logits, for each k (clamped to the class count)."""
    k_max = min(max(ks), logits.shape[-1])
    top = logits.topk(k_max, dim=-1).indices
    hits = top.eq(labels.unsqueeze(-1))
    return torch.stack([hits[:, : min(k, k_max)].any(dim=-1).sum() for k in ks])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
) -> dict[str, float]:
    """Test loss, top-1 and top-5 (percent) and the sample count of ``model``'s event branch on ``loader``.

    The model is put in eval mode (BatchNorm uses its running statistics) and returned to the mode it
    was in.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # summed loss, top-1 hits, top-5 hits
    count = 0  # a host integer: batch sizes are known without asking the device
    try:
        for frames, labels in loader:
            frames = frames.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model.forward_event(frames)  # [T, B, K]
            mean_logits = logits.float().mean(dim=0)
            loss_sum = F.cross_entropy(mean_logits, labels, reduction="sum")
            correct = topk_correct(mean_logits, labels, (1, 5))
            sums += torch.cat([loss_sum.double().reshape(1), correct.double()])
            count += labels.shape[0]
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("the test loader yielded no samples")
    loss_sum, top1, top5 = sums.tolist()
    return {
        "test_loss": loss_sum / count,
        "test_top1": 100.0 * top1 / count,
        "test_top5": 100.0 * top5 / count,
        "test_samples": int(count),
    }
