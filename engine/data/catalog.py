"""What a dataset reader hands to the rest of the data layer: lists of files, labels and splits.

A reader only walks directories and parses label files; it never decodes events or images. That
keeps it fast (a few stat calls), lets the frame cache key on the exact file list, and makes the
pairing rules (which static image may be drawn for which event sample) testable on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Catalog",
    "EventRecord",
    "StaticRecord",
    "natural_key",
    "pools_by_label",
    "split_counts",
]


@dataclass(frozen=True)
class EventRecord:
    """One event sample: a file (and, for files holding several samples, which one)."""

    path: Path
    label: int
    key: str
    """Pairing key shared with the static counterpart (the file stem, e.g. ``image_0001``)."""
    part: int = 0


@dataclass(frozen=True)
class StaticRecord:
    path: Path
    label: int
    key: str


@dataclass
class Catalog:
    """Splits of one dataset pair.

    Attributes:
        class_names: index → class name.
        train / test: event samples of each split (train already shrunk by ``traindata_ratio``).
        static: the static images that may be drawn (train counterparts only, unless a legacy
            switch says otherwise), in a fixed order.
        static_pools: for each class index, positions in ``static`` that may be drawn for an event
            sample of that class. Normally those are the class's own images; the legacy CEP-DVS
            switch reproduces the original's index confusion here.
        load_events: reads the events of a record → structured array with ``x, y, t, p``.
        frame_geometry: ``events → (x, y, (width, height))`` — the per-pair sensor-size policy.
        description: human-readable source, for messages.
        warnings: non-fatal mismatches found while pairing (reported, never silently dropped).
        frame_crop: optional crop of the binned frames (after binning, as the original).
        frame_mode: the pair's original frame values (``counts`` or ``frequency``, see
            :data:`engine.data.events.FRAME_MODES`); ``data.frame_mode = auto`` uses it.
        frame_align_corners: the original's bilinear resize of this pair (``F.interpolate`` with
            ``align_corners=True``, or torchvision's ``Resize``, which is ``align_corners=False``).
        static_invert: show static images as ``1 − x`` (Omniglot: bright strokes on black, like the
            event frames), applied after the static channel.
        class_sizes: every event recording of each class, kept or not (the original's class-balanced
            sampler weighs by it; see ``data.legacy_sampler_class_size_weights``).
        extra_key: anything else that changes the frames, for the cache key.
    """

    class_names: list[str]
    train: list[EventRecord]
    test: list[EventRecord]
    static: list[StaticRecord]
    static_pools: list[np.ndarray]
    load_events: Callable[[EventRecord], np.ndarray]
    frame_geometry: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, tuple[int, int]]]
    description: str
    balanced_sampling: bool
    warnings: list[str] = field(default_factory=list)
    frame_crop: tuple[int, int, int, int] | None = None
    """``(y0, y1, x0, x1)`` applied to the binned frames before resizing (N-Omniglot's 250×250 crop)."""
    frame_mode: str = "counts"
    frame_align_corners: bool = True
    static_invert: bool = False
    class_sizes: list[int] | None = None
    extra_key: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically: ``2.mat`` before ``10.mat`` (spec §11 item 12).

    For zero-padded names (``image_0001``) it agrees with plain lexicographic order.
    """
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def split_counts(n: int, portion: float, ratio: float) -> tuple[int, int]:
    """``(n_train_part, n_train_kept)`` for one class, as the original: ``round(portion·n)`` (Python's
    banker's rounding) and then the first ``int(n_train_part·ratio)`` of it."""
    n_train = round(portion * n)
    return n_train, int(n_train * ratio)


def pools_by_label(static: Sequence[StaticRecord], num_classes: int) -> list[np.ndarray]:
    """For each class, the positions in ``static`` of that class's own images, in order (the normal,
    non-legacy pairing). One stable sort, so it stays cheap with thousands of classes (N-Omniglot)."""
    labels = np.array([r.label for r in static], dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(num_classes)]
