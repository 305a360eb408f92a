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
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["events_to_frames", "resize_frames", "time_bin_members"]


def time_bin_members(t: np.ndarray, n_time_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Which events fall in which of ``n_time_bins`` equal-duration bins, as tonic slices them.

    Returns ``(event_index, bin_index)``: parallel arrays listing every (event, bin) membership.
    With tonic's zero overlap each event is in at most one bin.
    """
    n = t.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    t = np.asarray(t, dtype=np.int64)
    t0 = int(t[0])
    width = (int(t[-1]) - t0) // n_time_bins
    starts = np.arange(n_time_bins, dtype=np.int64) * width + t0
    first = np.searchsorted(t, starts)
    last = np.searchsorted(t, starts + width)
    lengths = np.maximum(last - first, 0)
    total = int(lengths.sum())
    bin_index = np.repeat(np.arange(n_time_bins, dtype=np.int64), lengths)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    event_index = np.repeat(first, lengths) + offsets
    return event_index, bin_index


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
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p).astype(np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height or p.min() < 0 or p.max() > 1:
        raise ValueError(
            f"events outside the sensor {width}x{height}x2: x in [{x.min()}, {x.max()}], "
            f"y in [{y.min()}, {y.max()}], p in [{p.min()}, {p.max()}]"
        )
    event_index, bin_index = time_bin_members(t, n_time_bins)
    flat = ((bin_index * 2 + p[event_index]) * height + y[event_index]) * width + x[event_index]
    counts = np.bincount(flat, minlength=frames.size)
    return counts.astype(np.int16).reshape(frames.shape)


def resize_frames(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[T, P, H, W]`` frames to ``[T, P, size, size]`` as the original does.

    ``align_corners=True`` and no antialiasing, applied to the float counts; the aspect ratio is not
    preserved (spec §7.1).
    """
    tensor = torch.as_tensor(frames).to(torch.float32)
    if tensor.shape[-2:] == (size, size):
        return tensor.clone()
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=True)
