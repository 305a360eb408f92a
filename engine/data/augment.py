"""Batched event-frame augmentation that runs on whatever device the frames are on.

The original applies torchvision transforms per sample inside DataLoader workers: ``RandomCrop(48,
padding=4)`` (zero padding, one crop for all time steps and polarities of a sample) and, with
``--DVS-DA``, ``RandomHorizontalFlip(0.5)`` and ``RandomRotation(15)`` (nearest, fill 0) after it.
These functions do the same for a whole batch ``[B, ..., H, W]`` at once — each sample still gets its
own crop offset, flip and angle — with a caller-supplied ``torch.Generator`` so that the trainer can
run them on the GPU and replay them exactly on resume.

The original's ``--snr s`` (robustness runs, spec §7.1) replaces the crop, when ``s > 0`` and DVS-DA is
off, by additive Gaussian noise at ``s`` dB relative to each sample's mean squared value:
``x + N(0, 1)·sqrt(mean(x²) / 10^(s/10))``. :func:`add_noise_at_snr` does it batched, per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["FrameAugment", "add_noise_at_snr", "random_crop", "random_hflip", "random_rotation"]


def random_crop(frames: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the original size at a random offset per sample."""
    if padding <= 0:
        return frames
    batch, height, width = frames.shape[0], frames.shape[-2], frames.shape[-1]
    flat = frames.reshape(batch, -1, height, width)
    padded = F.pad(flat, (padding, padding, padding, padding))
    device = frames.device
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
    rows = top[:, None] + torch.arange(height, device=device)
    cols = left[:, None] + torch.arange(width, device=device)
    channels = flat.shape[1]
    by_rows = padded.gather(2, rows[:, None, :, None].expand(batch, channels, height, padded.shape[-1]))
    out = by_rows.gather(3, cols[:, None, None, :].expand(batch, channels, height, width))
    return out.reshape(frames.shape)


def random_hflip(
    frames: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``."""
    batch = frames.shape[0]
    flip = torch.rand(batch, generator=generator, device=frames.device) < p
    return torch.where(flip.view(batch, *([1] * (frames.dim() - 1))), frames.flip(-1), frames)


def random_rotation(
    frames: torch.Tensor, degrees: float = 15.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each sample about its centre by an angle uniform in ±``degrees``; nearest, fill 0."""
    batch, height, width = frames.shape[0], frames.shape[-2], frames.shape[-1]
    flat = frames.reshape(batch, -1, height, width)
    angle = (torch.rand(batch, generator=generator, device=frames.device) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    # Normalised coordinates are anisotropic for non-square frames; scale to keep the rotation rigid.
    aspect = width / height
    theta = torch.stack(
        [torch.stack([cos, -sin / aspect, zero], 1), torch.stack([sin * aspect, cos, zero], 1)], 1
    ).to(flat.dtype)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.reshape(frames.shape)


def add_noise_at_snr(
    frames: torch.Tensor, snr_db: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each sample plus white Gaussian noise whose power is its own mean square over ``10^(snr_db/10)``.

    Signal power is the mean of ``x²`` over all of a sample's elements (every time step, polarity and
    pixel), as the original computes it per sample; an all-zero sample therefore gets no noise.
    """
    batch = frames.shape[0]
    power = frames.pow(2).reshape(batch, -1).mean(dim=1)
    std = torch.sqrt(power / (10.0 ** (snr_db / 10.0))).view(batch, *([1] * (frames.dim() - 1)))
    noise = torch.randn(frames.shape, generator=generator, device=frames.device, dtype=frames.dtype)
    return frames + noise * std


@dataclass(frozen=True)
class FrameAugment:
    """Training augmentation of event frames ``[B, T, 2, S, S]`` (spec §7.1/§7.2).

    Call it as ``augment(frames, generator)``; the generator must live on the frames' device
    (``torch.Generator(device=frames.device)``), so on a GPU no random numbers cross to the host.

    Args:
        padding: random-crop padding (4 in every published run); 0 disables the crop.
        dvs_da: add the original ``--DVS-DA`` flip and ±15° rotation after the crop.
        snr: the original ``--snr`` in dB; when > 0 and ``dvs_da`` is off, Gaussian noise at this
            SNR replaces the crop (with ``dvs_da`` the original ignores it, and so does this).
    """

    padding: int = 4
    dvs_da: bool = False
    rotation_degrees: float = 15.0
    snr: float = 0.0

    def __call__(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.snr > 0 and not self.dvs_da:
            return add_noise_at_snr(frames, self.snr, generator)
        out = random_crop(frames, self.padding, generator)
        if self.dvs_da:
            out = random_hflip(out, 0.5, generator)
            out = random_rotation(out, self.rotation_degrees, generator)
        return out
