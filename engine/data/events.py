"""Events → frames: pure, vectorised functions over plain ``x, y, t, p`` arrays.

The original pipeline runs ``tonic.transforms.ToFrame(sensor_size=None, n_time_bins=T)`` and then a
bilinear resize. :func:`events_to_frames` reproduces ToFrame's ``n_time_bins`` slicing *exactly*
(tonic's ``SliceByTimeBins``): the bin width is ``(t[-1] - t[0]) // T`` (first and last event of the
recording as stored, not min/max), bin ``i`` holds the events whose index lies in
``searchsorted(t, t0 + i·w) : searchsorted(t, t0 + i·w + w)``, so events at or after ``t0 + T·w``
(including the very last one when the span divides evenly) are dropped, and a recording shorter
than ``T`` µs gives all-zero frames. Counting uses one ``np.bincount`` over a flat
``(bin, polarity, y, x)`` index instead of tonic's ``np.add.at`` loop.

Unlike ToFrame with ``sensor_size=None``, the result always has two polarity channels: a recording
with only ON (or only OFF) events keeps its events in their own channel instead of collapsing to a
one-channel frame that the models cannot take (spec §11 item 18).

:func:`events_to_frequency_frames` is the other representation the original uses: N-Omniglot's
``integrate_events_to_frames(..., data_type="frequency")`` (spec §7.3) — counts ÷ slice duration, each
frame and polarity divided by its own maximum, so values lie in [0, 1]. Its slicing differs from
tonic's in one place: the last slice runs to the end of the recording. :data:`FRAME_MODES` maps the
``data.frame_mode`` names to these two functions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FRAME_MODES",
    "events_to_frames",
    "events_to_frequency_frames",
    "resize_frames",
    "time_bin_members",
]


def time_bin_members(t: np.ndarray, n_time_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Which events fall in which of ``n_time_bins`` equal-duration bins, as tonic slices them.

    Returns ``(event_index, bin_index)``: parallel arrays listing every (event, bin) membership.
    With tonic's zero overlap each event is in at most one bin.
    """
    if t.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return _slice_members(*_bin_bounds(np.asarray(t, dtype=np.int64), n_time_bins))


def _bin_bounds(t: np.ndarray, n_time_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Event index range ``first[i]:last[i]`` of each bin: width ``(t[-1] - t[0]) // T`` from ``t[0]``."""
    t0 = int(t[0])
    width = (int(t[-1]) - t0) // n_time_bins
    starts = np.arange(n_time_bins, dtype=np.int64) * width + t0
    return np.searchsorted(t, starts), np.searchsorted(t, starts + width)


def _slice_members(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(event_index, bin_index)`` of bins that hold the event index ranges ``first[i]:last[i]``."""
    lengths = np.maximum(last - first, 0)
    bin_index = np.repeat(np.arange(len(first), dtype=np.int64), lengths)
    offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(first, lengths) + offsets, bin_index


def events_to_frames(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    sensor_size: tuple[int, int],
    n_time_bins: int,
) -> np.ndarray:
    """Per-pixel, per-polarity event counts in ``n_time_bins`` equal-duration bins.

    Args:
        x, y, t, p: event columns (``p`` is 0/1 or bool; ``t`` in µs, in recording order).
        sensor_size: ``(width, height)``; events outside it are an error, not silently dropped.
        n_time_bins: number of frames ``T``.

    Returns:
        ``int16`` array ``[T, 2, height, width]``, equal to tonic's
        ``ToFrame(sensor_size=(width, height, 2), n_time_bins=T)`` on the same events.
    """
    width, height = int(sensor_size[0]), int(sensor_size[1])
    frames = np.zeros((n_time_bins, 2, height, width), dtype=np.int16)
    if len(t) == 0:
        return frames
    x, y, p = _checked_columns(x, y, p, width, height)
    event_index, bin_index = time_bin_members(t, n_time_bins)
    return _count(x, y, p, event_index, bin_index, frames.shape).astype(np.int16)


def _checked_columns(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p).astype(np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height or p.min() < 0 or p.max() > 1:
        raise ValueError(
            f"events outside the sensor {width}x{height}x2: x in [{x.min()}, {x.max()}], "
            f"y in [{y.min()}, {y.max()}], p in [{p.min()}, {p.max()}]"
        )
    return x, y, p


def _count(
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    event_index: np.ndarray,
    bin_index: np.ndarray,
    shape: tuple[int, ...],
) -> np.ndarray:
    """``int64 [T, 2, H, W]`` counts of the listed (event, bin) memberships, one ``bincount``."""
    height, width = shape[-2], shape[-1]
    flat = ((bin_index * 2 + p[event_index]) * height + y[event_index]) * width + x[event_index]
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


FREQUENCY_EPS = 1e-5
"""Floor of the per-frame maximum in the original's ``normalize_frame(frames, "max")`` (events/µs)."""


def events_to_frequency_frames(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    sensor_size: tuple[int, int],
    n_time_bins: int,
) -> np.ndarray:
    """The original N-Omniglot "frequency" frames: ``float32 [T, 2, height, width]`` in [0, 1].

    As ``integrate_events_to_frames(data_type="frequency")`` of the N-Omniglot code (spec §7.3):

    1. times relative to the first event; slice width ``dt = t_last // T`` (µs);
    2. slice ``i`` holds the events with ``i·dt ≤ t < (i+1)·dt`` — except the last slice, which, when
       that window holds any event, runs to the end of the recording (so the events at or after
       ``T·dt`` are kept, unlike tonic);
    3. per-pixel, per-polarity counts ÷ the slice duration (``dt``; ``dt + t_last mod T`` for the last);
    4. each frame and polarity divided by ``max(its maximum, 1e-5)``;
    5. rounded to float16, the precision the original stores its frames in.

    The original computes steps 3–4 in float16; here they are one float32 division, then rounded once
    (values differ by at most one float16 step, ~5e-4). A recording spanning no more than ``T`` µs is
    an error, as in the original (which asserts it).
    """
    width, height = int(sensor_size[0]), int(sensor_size[1])
    shape = (n_time_bins, 2, height, width)
    t = np.asarray(t, dtype=np.int64)
    n = t.shape[0]
    span = int(t[-1] - t[0]) if n else 0
    if span <= n_time_bins:
        raise ValueError(
            f"the recording spans {span} µs; frequency frames need more than T = {n_time_bins} µs "
            "(the original asserts this)"
        )
    x, y, p = _checked_columns(x, y, p, width, height)
    dt = span // n_time_bins
    first, last = _bin_bounds(t, n_time_bins)  # tonic's slices, except that the last one …
    if last[-1] > first[-1]:  # … runs to the end of the recording when its window holds any event
        last[-1] = n
    event_index, bin_index = _slice_members(first, last)
    counts = _count(x, y, p, event_index, bin_index, shape)

    duration = np.full(n_time_bins, float(dt))
    duration[-1] = dt + span % n_time_bins
    # (c / d) / max(c_max / d, eps) = c / max(c_max, eps·d): one float32 division per non-zero pixel
    peak = np.maximum(counts.max(axis=(2, 3)), FREQUENCY_EPS * duration[:, None]).astype(np.float32)
    flat = counts.reshape(-1)
    nonzero = np.flatnonzero(flat)
    out = np.zeros(shape, dtype=np.float32)
    values = flat[nonzero].astype(np.float32) / peak.reshape(-1)[nonzero // (height * width)]
    out.reshape(-1)[nonzero] = values.astype(np.float16)
    return out


FRAME_MODES = {"counts": events_to_frames, "frequency": events_to_frequency_frames}
"""``data.frame_mode`` name → ``(x, y, t, p, sensor_size, T) -> [T, 2, H, W]`` frames."""


def resize_frames(frames: np.ndarray | torch.Tensor, size: int, align_corners: bool = True) -> torch.Tensor:
    """Bilinear resize of ``[T, P, H, W]`` frames to ``[T, P, size, size]`` as the original does.

    No antialiasing; the aspect ratio is not preserved (spec §7.1). ``align_corners=True`` is the
    original's ``F.interpolate`` for N-Caltech101 and CEP-DVS; ``False`` is its torchvision
    ``Resize((28, 28))`` on N-Omniglot tensors (torchvision before 0.17 did not antialias tensors).
    """
    tensor = torch.as_tensor(frames).to(torch.float32)
    if tensor.shape[-2:] == (size, size):
        return tensor.clone()
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=align_corners)
