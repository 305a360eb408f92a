"""``nshapes``: the built-in static/event dataset pair, generated from a seed in seconds.

Why: a new user with no dataset must still be able to run the whole product, and tests need a real
dataset. ``generate_nshapes`` draws K classes of procedural images and records each one with a
simulated DVS making three saccades (:mod:`engine.data.saccade`), then writes them **in the
N-Caltech101 layout and formats** — ``Caltech101/<class>/image_XXXX.bin`` events and
``101_ObjectCategories/<class>/image_XXXX.jpg`` images — so the default run reads them back through
exactly the N-Caltech101 reader.

What makes a class: the shape of one foreground object (disk, square, triangle, ring, cross, star,
bar, crescent, hexagon, L-shape), and beyond ten classes also its fill (solid, striped, dotted,
checkered). Nuisances that keep it from being trivial: position, scale, rotation (±30°), colours (with a
guaranteed luminance contrast), a smooth random background texture, and 0–2 distractor blobs; the
events add threshold mismatch and background-activity noise.

Determinism: image ``i`` of class ``c`` depends only on ``(seed, c, i)`` — generating more images per
class or more classes leaves the existing ones unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.binfile import write_bin_events
from engine.data.saccade import SaccadeConfig, simulate_saccades

__all__ = ["FILLS", "GENERATOR_VERSION", "SHAPES", "NShapesSummary", "class_names", "generate_nshapes"]

GENERATOR_VERSION = 3
"""Bump when the generated content changes, so cached copies are regenerated."""

MAX_ROTATION = np.pi / 6
"""Objects are rotated by at most ±30°, so orientation-dependent shapes (triangle, L) stay recognisable."""

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _polygon(sides: int, inradius: float) -> Mask:
    angles = np.pi / 2 + 2 * np.pi * np.arange(sides) / sides

    def mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        inside = np.ones(a.shape, dtype=bool)
        for theta in angles:
            inside &= a * np.cos(theta) + b * np.sin(theta) <= inradius
        return inside

    return mask


#: Shape masks on coordinates normalised by the object radius (object fits the unit disk).
SHAPES: dict[str, Mask] = {
    "disk": lambda a, b: a**2 + b**2 <= 1.0,
    "square": lambda a, b: np.maximum(np.abs(a), np.abs(b)) <= 0.75,
    "triangle": _polygon(3, 0.5),
    "ring": lambda a, b: (a**2 + b**2 <= 1.0) & (a**2 + b**2 >= 0.55**2),
    "cross": lambda a, b: (
        ((np.abs(a) <= 0.28) & (np.abs(b) <= 1.0)) | ((np.abs(b) <= 0.28) & (np.abs(a) <= 1.0))
    ),
    "star": lambda a, b: np.hypot(a, b) <= 0.5 + 0.5 * np.cos(5 * np.arctan2(b, a)) ** 2,
    "bar": lambda a, b: (np.abs(a) <= 1.0) & (np.abs(b) <= 0.3),
    "crescent": lambda a, b: (a**2 + b**2 <= 1.0) & ((a - 0.45) ** 2 + b**2 >= 0.75**2),
    "hexagon": _polygon(6, 0.85),
    "lshape": lambda a, b: (
        ((a >= -0.8) & (a <= -0.3) & (np.abs(b) <= 0.9)) | ((np.abs(a) <= 0.8) & (b >= 0.4) & (b <= 0.9))
    ),
}

FILLS = ("solid", "striped", "dotted", "checkered")


def class_names(classes: int) -> list[str]:
    """``disk, square, …`` for the first ten classes, then ``disk_striped, …``."""
    limit = len(SHAPES) * len(FILLS)
    if not 2 <= classes <= limit:
        raise ValueError(f"nshapes supports 2 to {limit} classes, got {classes}")
    shapes = list(SHAPES)
    names = []
    for k in range(classes):
        shape, fill = shapes[k % len(shapes)], FILLS[k // len(shapes)]
        names.append(shape if fill == "solid" else f"{shape}_{fill}")
    return names


def _fill_pattern(fill: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    if fill == "solid":
        return np.ones(u.shape, dtype=bool)
    if fill == "striped":
        return np.mod(u / period, 1.0) < 0.5
    if fill == "dotted":
        return (np.mod(u / period, 1.0) - 0.5) ** 2 + (np.mod(v / period, 1.0) - 0.5) ** 2 < 0.3**2
    return (np.floor(u / period) + np.floor(v / period)) % 2 == 0


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _contrasting_colours(
    rng: np.random.Generator, min_contrast: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    while True:
        background, foreground = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
        if abs(_luminance(background) - _luminance(foreground)) >= min_contrast:
            return background, foreground


def render_image(
    shape: str, fill: str, rng: np.random.Generator, size: int = 64, supersample: int = 2
) -> np.ndarray:
    """One RGB image ``float [size, size, 3]`` in [0, 1] of ``shape`` with ``fill`` and random nuisances."""
    n = size * supersample
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / supersample
    background, foreground = _contrasting_colours(rng)
    # smooth background texture: a few random low-frequency waves
    texture = np.zeros((n, n))
    for _ in range(3):
        k = rng.uniform(0.02, 0.12, 2) * rng.choice([-1, 1], 2)
        texture += np.sin(2 * np.pi * (k[0] * xx + k[1] * yy) + rng.uniform(0, 2 * np.pi))
    image = background + 0.025 * texture[..., None] * rng.uniform(0.5, 1.5, 3)
    # distractor blobs
    for _ in range(rng.integers(0, 3)):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.04, 0.08) * size
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
        image[blob] = rng.uniform(0.05, 0.95, 3)
    # the object
    radius = rng.uniform(0.24, 0.34) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    a = dx * np.cos(angle) + dy * np.sin(angle)
    b = -dx * np.sin(angle) + dy * np.cos(angle)
    inside = SHAPES[shape](a, b)
    pattern = _fill_pattern(fill, a * radius, b * radius, period=rng.uniform(4.0, 7.0))
    second = np.clip(foreground + rng.choice([-1, 1]) * 0.35, 0.0, 1.0)
    colour = np.where(pattern[..., None], foreground, second)
    image = np.where(inside[..., None], colour, image)
    image = np.clip(image, 0.0, 1.0)
    return image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))


@dataclass(frozen=True)
class NShapesSummary:
    root: Path
    class_names: list[str]
    per_class: int
    events_total: int
    events_min: int
    events_max: int


def generate_nshapes(
    out_dir: str | Path,
    classes: int = 10,
    per_class: int = 40,
    seed: int = 0,
    image_size: int = 64,
    saccades: SaccadeConfig | None = None,
    jpeg_quality: int = 95,
) -> NShapesSummary:
    """Write the ``nshapes`` pair under ``out_dir`` in the N-Caltech101 + Caltech101 layout.

    Returns a summary (class names, event counts). Deterministic from ``seed`` (see module docstring).
    """
    out = Path(out_dir)
    names = class_names(classes)
    shapes = list(SHAPES)
    events_counts: list[int] = []
    for label, name in enumerate(names):
        shape, fill = shapes[label % len(shapes)], FILLS[label // len(shapes)]
        rngs = [np.random.default_rng([seed, label, i]) for i in range(per_class)]
        images = np.stack([render_image(shape, fill, rng, image_size) for rng in rngs])
        grey = _luminance(images)
        recordings = simulate_saccades(grey, rngs, saccades or SaccadeConfig())
        event_dir = out / "Caltech101" / name
        image_dir = out / "101_ObjectCategories" / name
        event_dir.mkdir(parents=True, exist_ok=True)
        image_dir.mkdir(parents=True, exist_ok=True)
        for i, (image, events) in enumerate(zip(images, recordings, strict=True)):
            stem = f"image_{i + 1:04d}"
            write_bin_events(
                event_dir / f"{stem}.bin", events[:, 0], events[:, 1], events[:, 2], events[:, 3]
            )
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(
                image_dir / f"{stem}.jpg", quality=jpeg_quality
            )
            events_counts.append(len(events))
    return NShapesSummary(
        root=out,
        class_names=names,
        per_class=per_class,
        events_total=int(sum(events_counts)),
        events_min=int(min(events_counts)),
        events_max=int(max(events_counts)),
    )
