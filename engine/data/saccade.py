"""A small, vectorised DVS simulator: a sensor making three saccades over a static image.

Why: the built-in ``nshapes`` dataset must look to the engine like N-Caltech101, which was recorded by
an ATIS camera moved along a three-saccade triangle in front of a monitor (Orchard et al. 2015). This
module moves the image along such a triangle and emits an event whenever a pixel's log intensity has
moved by its contrast threshold since that pixel's last event — the standard DVS pixel model — with
the two kinds of sensor noise that matter for learning: per-pixel threshold mismatch and
background-activity (shot-noise) events.

Everything is vectorised over a whole batch of images at once; time advances in ``step_us`` steps and
each threshold crossing gets a timestamp interpolated inside its step, so events are not quantised
to the step grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SaccadeConfig", "simulate_saccades"]


@dataclass(frozen=True)
class SaccadeConfig:
    amplitude_px: float = 3.0
    """Side of the saccade triangle, in pixels of the image."""
    saccade_us: int = 100_000
    """Duration of each of the three saccades (the recording lasts 3× this)."""
    step_us: int = 2_000
    """Simulation step; motion per step stays well below a pixel."""
    contrast_threshold: float = 0.2
    """Log-intensity change that fires one event (both polarities)."""
    threshold_sigma: float = 0.03
    """Per-pixel threshold mismatch (std dev, absolute, fixed per pixel and polarity)."""
    background_rate_hz: tuple[float, float] = (0.5, 2.0)
    """Per-pixel background-activity rate, drawn uniformly per recording from this range."""
    log_eps: float = 0.1
    """Offset inside ``log(I + eps)``: keeps dark pixels from amplifying noise."""


def _triangle_offset(t_us: np.ndarray, cfg: SaccadeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Image displacement (dx, dy) at times ``t_us`` along the closed triangle, eased in each saccade."""
    a = cfg.amplitude_px
    corners = np.array([[0.0, 0.0], [a / 2, a], [a, 0.0], [0.0, 0.0]])
    leg = np.clip(t_us // cfg.saccade_us, 0, 2).astype(np.int64)
    frac = np.clip((t_us - leg * cfg.saccade_us) / cfg.saccade_us, 0.0, 1.0)
    ease = 0.5 - 0.5 * np.cos(np.pi * frac)
    start, end = corners[leg], corners[leg + 1]
    pos = start + (end - start) * ease[:, None]
    return pos[:, 0], pos[:, 1]


def _shifted(padded: np.ndarray, pad: int, dx: float, dy: float, height: int, width: int) -> np.ndarray:
    """Bilinear sample of ``padded[..., pad - dy + i, pad - dx + j]`` for the whole batch."""
    ox, oy = pad - dx, pad - dy
    ix, iy = int(np.floor(ox)), int(np.floor(oy))
    fx, fy = ox - ix, oy - iy
    top = (
        padded[:, iy : iy + height, ix : ix + width] * (1 - fx)
        + padded[:, iy : iy + height, ix + 1 : ix + 1 + width] * fx
    )
    bottom = (
        padded[:, iy + 1 : iy + 1 + height, ix : ix + width] * (1 - fx)
        + padded[:, iy + 1 : iy + 1 + height, ix + 1 : ix + 1 + width] * fx
    )
    return top * (1 - fy) + bottom * fy


def simulate_saccades(
    intensity: np.ndarray, rngs: list[np.random.Generator], cfg: SaccadeConfig = SaccadeConfig()
) -> list[np.ndarray]:
    """Event recordings of a batch of grey images.

    Args:
        intensity: ``float [N, H, W]`` in [0, 1].
        rngs: one generator per image (noise is drawn per image, so each recording depends only on
            its own image and generator, not on the batch it was simulated in).

    Returns:
        One ``int64 [n_i, 4]`` array per image with columns ``x, y, t (µs), p (1 = ON)``, sorted by t.
    """
    n, height, width = intensity.shape
    pad = int(np.ceil(cfg.amplitude_px)) + 2
    log_img = np.log(intensity.astype(np.float32) + np.float32(cfg.log_eps))
    padded = np.pad(log_img, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    c = cfg.contrast_threshold
    on_thr = np.stack(
        [
            np.clip(c + cfg.threshold_sigma * r.standard_normal((height, width)), 0.5 * c, 1.5 * c)
            for r in rngs
        ]
    )
    off_thr = np.stack(
        [
            np.clip(c + cfg.threshold_sigma * r.standard_normal((height, width)), 0.5 * c, 1.5 * c)
            for r in rngs
        ]
    )
    on_thr = on_thr.astype(np.float32)
    off_thr = off_thr.astype(np.float32)

    duration = 3 * cfg.saccade_us
    times = np.arange(0, duration + 1, cfg.step_us, dtype=np.int64)
    dxs, dys = _triangle_offset(times, cfg)
    reference = _shifted(padded, pad, dxs[0], dys[0], height, width).ravel()
    previous = reference.copy()
    on_flat, off_flat = on_thr.ravel(), off_thr.ravel()
    chunks: list[np.ndarray] = []
    for step in range(1, len(times)):
        current = _shifted(padded, pad, dxs[step], dys[step], height, width).ravel()
        diff = current - reference
        for sign, thr in ((1.0, on_flat), (-1.0, off_flat)):
            # a boolean scan of the whole batch, then arithmetic on the few pixels that fire
            flat = np.flatnonzero(sign * diff >= thr)
            if flat.size == 0:
                continue
            k = np.floor(sign * diff[flat] / thr[flat]).astype(np.int64)
            ref_before = reference[flat]
            reference[flat] = ref_before + sign * k * thr[flat]
            flat_rep = np.repeat(flat, k)
            level = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k) + 1
            crossing = np.repeat(ref_before, k) + sign * level * thr[flat_rep]
            start = previous[flat_rep]
            span = current[flat_rep] - start
            safe = np.where(np.abs(span) > 1e-12, span, 1.0)
            frac = np.clip((crossing - start) / safe, 0.0, 1.0)
            t = times[step - 1] + np.floor(frac * cfg.step_us).astype(np.int64)
            img, rest = np.divmod(flat_rep, height * width)
            yy, xx = np.divmod(rest, width)
            chunks.append(np.stack([img, xx, yy, t, np.full_like(img, int(sign > 0))], 1))
        previous = current

    signal = np.concatenate(chunks) if chunks else np.zeros((0, 5), dtype=np.int64)
    signal = signal[np.argsort(signal[:, 0], kind="stable")]
    bounds = np.searchsorted(signal[:, 0], np.arange(n + 1))
    recordings = []
    for i, rng in enumerate(rngs):
        own = signal[bounds[i] : bounds[i + 1], 1:]
        rate = rng.uniform(*cfg.background_rate_hz)
        count = rng.poisson(rate * height * width * duration * 1e-6)
        noise = np.stack(
            [
                rng.integers(0, width, count),
                rng.integers(0, height, count),
                rng.integers(0, duration, count),
                rng.integers(0, 2, count),
            ],
            1,
        ).astype(np.int64)
        events = np.concatenate([own, noise])
        recordings.append(events[np.argsort(events[:, 2], kind="stable")])
    return recordings
