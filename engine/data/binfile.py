"""The N-MNIST / N-Caltech101 ``.bin`` address-event format: read through tonic, write for ``nshapes``.

Layout: 5 bytes per event, no header. ``byte0 = x``, ``byte1 = y``, ``byte2 = p << 7 | t[22:16]``,
``byte3 = t[15:8]``, ``byte4 = t[7:0]``; ``t`` in microseconds (23 bits). An event with ``y == 240``
is a timestamp-overflow marker that tonic's reader turns into an offset for every later event.

The writer only writes what the format can hold without overflow markers (``0 ≤ x ≤ 255``,
``0 ≤ y ≤ 239``, ``0 ≤ t < 2**23`` µs ≈ 8.4 s, non-decreasing ``t``) and refuses anything else; the
built-in ``nshapes`` recordings last ~0.3 s, far inside that range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tonic.io import read_mnist_file

from engine.errors import DatasetError

__all__ = [
    "ATIS_SENSOR",
    "Events",
    "MAX_TIMESTAMP_US",
    "implausible_events",
    "read_bin_events",
    "write_bin_events",
]

MAX_TIMESTAMP_US = 2**23
OVERFLOW_Y = 240

ATIS_SENSOR = (304, 240)
"""Width and height of the ATIS sensor that recorded N-MNIST and N-Caltech101."""
MAX_DISORDERED_FRACTION = 0.01
"""Recordings are time-ordered; random or shifted bytes decrease about every other step."""
MAX_EVENT_RATE_HZ = 1e8
"""Far above any DVS's bandwidth (≈ 10⁷ events/s for the fastest sensors)."""

#: Plain structured event dtype used across the data package (tonic's field names and order).
Events = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


def write_bin_events(path: str | Path, x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> None:
    """Write events as an N-Caltech101 ``.bin`` file (see the module docstring for the limits)."""
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    p = np.asarray(p).astype(np.int64)
    if not (len(x) == len(y) == len(t) == len(p)):
        raise ValueError("x, y, t, p must have the same length")
    if len(t):
        problems = []
        if x.min() < 0 or x.max() > 255:
            problems.append(f"x in [{x.min()}, {x.max()}] (must fit one byte)")
        if y.min() < 0 or y.max() >= OVERFLOW_Y:
            problems.append(f"y in [{y.min()}, {y.max()}] (must be < {OVERFLOW_Y}; 240 marks an overflow)")
        if t.min() < 0 or t.max() >= MAX_TIMESTAMP_US:
            problems.append(f"t in [{t.min()}, {t.max()}] µs (must be < 2**23: no overflow markers written)")
        if np.any(np.diff(t) < 0):
            problems.append("timestamps are not sorted")
        if p.min() < 0 or p.max() > 1:
            problems.append(f"p in [{p.min()}, {p.max()}] (must be 0 or 1)")
        if problems:
            raise ValueError(f"cannot write {path} as an N-Caltech101 .bin file: " + "; ".join(problems))
    raw = np.empty((len(t), 5), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    Path(path).write_bytes(raw.tobytes())


def read_bin_events(path: str | Path) -> np.ndarray:
    """Events of one ``.bin`` file via ``tonic.io.read_mnist_file``; a broken file names itself.

    Raises:
        DatasetError: the file is missing, empty, or its size is not a multiple of 5 bytes
            (a truncated download).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DatasetError(f"cannot read event file {path}: {exc}") from None
    if size == 0 or size % 5:
        raise DatasetError(
            f"corrupt or truncated event file {path}: {size} bytes, expected a non-zero multiple of 5 "
            "(N-Caltech101 .bin: 5 bytes per event); re-extract or re-download this file"
        )
    events = read_mnist_file(str(path), dtype=Events)
    if len(events) == 0:
        raise DatasetError(f"event file {path} holds no events (only overflow markers)")
    problems = implausible_events(events, ATIS_SENSOR)
    if problems:
        raise DatasetError(
            f"event file {path} does not look like an N-Caltech101 recording: {'; '.join(problems)} "
            "(a corrupt file, or not this format); re-extract or re-download it"
        )
    return events


def implausible_events(events: np.ndarray, sensor: tuple[int, int]) -> list[str]:
    """What makes ``events`` (x, y, t, p fields) implausible for a recording of a ``sensor = (W, H)``
    camera: coordinates outside it, timestamps out of order, a polarity other than 0/1, an impossible
    event rate. Cheap (a few vectorised passes), so every read is checked."""
    problems = []
    x, y, t = events["x"], events["y"], events["t"]
    width, height = sensor
    outside = int(np.count_nonzero((x < 0) | (x >= width) | (y < 0) | (y >= height)))
    if outside:
        problems.append(f"{outside} of {len(events)} events outside the {width}×{height} sensor")
    if len(t) > 1:
        backwards = int(np.count_nonzero(np.diff(t) < 0))
        if backwards > MAX_DISORDERED_FRACTION * (len(t) - 1):
            problems.append(f"timestamps go backwards at {backwards} of {len(t) - 1} steps")
        duration_s = max(int(t.max() - t.min()), 1) * 1e-6
        if len(t) / duration_s > MAX_EVENT_RATE_HZ:
            problems.append(f"{len(t)} events within {duration_s * 1e6:.0f} µs, an impossible rate")
    if events.dtype["p"] != np.bool_:
        bad = int(np.count_nonzero((events["p"] != 0) & (events["p"] != 1)))
        if bad:
            problems.append(f"{bad} polarities other than 0 and 1")
    return problems
