"""Event binning equals tonic's ToFrame exactly; frequency frames equal a hand computation of the
original N-Omniglot ones; the .bin writer round-trips through tonic's reader."""

from __future__ import annotations

import numpy as np
import pytest
import tonic
import torch
from tonic.io import events_struct, read_mnist_file

from engine.data.binfile import MAX_TIMESTAMP_US, read_bin_events, write_bin_events
from engine.data.events import events_to_frames, events_to_frequency_frames, resize_frames
from engine.errors import DatasetError


def _structured(x, y, t, p):
    events = np.zeros(len(t), dtype=events_struct)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


CASES = [
    # (n events, time span µs, T, polarity mode)
    (500, 300_000, 10, "both"),
    (97, 12_345, 6, "both"),
    (300, 300_000, 7, "on_only"),  # one-polarity recording: tonic with P=2 keeps ON in channel 1
    (300, 300_000, 12, "off_only"),
    (50, 9, 10, "both"),  # span shorter than T: tonic's bin width is 0, all frames empty
    (1000, 10, 3, "both"),  # many simultaneous timestamps at bin edges
    (1, 0, 4, "both"),
]


@pytest.mark.parametrize(("n", "span", "T", "polarity"), CASES)
def test_frames_equal_tonic_to_frame(n: int, span: int, T: int, polarity: str) -> None:
    rng = np.random.default_rng(n + T)
    width, height = 23, 17
    x, y = rng.integers(0, width, n), rng.integers(0, height, n)
    t = np.sort(rng.integers(0, span + 1, n))
    p = {"both": rng.integers(0, 2, n), "on_only": np.ones(n, int), "off_only": np.zeros(n, int)}[polarity]
    expected = tonic.transforms.ToFrame(sensor_size=(width, height, 2), n_time_bins=T)(
        _structured(x, y, t, p)
    )
    ours = events_to_frames(x, y, t, p, (width, height), T)
    assert ours.dtype == np.int16 and ours.shape == (T, 2, height, width)
    np.testing.assert_array_equal(ours, expected)
    if polarity == "on_only":
        assert ours[:, 0].sum() == 0 and ours[:, 1].sum() > 0


def test_edge_events_are_dropped_like_tonic() -> None:
    # span 100 µs over T=4 → width 25: events at t0 + 100 (the last one) fall outside every bin.
    t = np.array([0, 24, 25, 99, 100, 100])
    frames = events_to_frames(np.zeros(6, int), np.zeros(6, int), t, np.ones(6, int), (1, 1), 4)
    assert frames[:, 1, 0, 0].tolist() == [2, 1, 0, 1]


def test_events_outside_the_sensor_are_an_error() -> None:
    with pytest.raises(ValueError, match="outside the sensor"):
        events_to_frames(np.array([5]), np.array([0]), np.array([0]), np.array([1]), (5, 5), 2)


def test_frequency_frames_equal_a_hand_computation() -> None:
    # T = 2 over 300 001 µs: dt = 150 000, slices [0, 150 000) and [150 000, 300 000) + the tail, whose
    # duration is dt + 300 001 mod 2 = 150 001. Sensor 2×1 (x = 0, 1).
    t = np.array([0, 10, 200_000, 200_001, 200_002, 300_001]) + 5_000
    x = np.array([0, 1, 1, 1, 1, 0])
    p = np.array([1, 0, 1, 1, 1, 1])
    frames = events_to_frequency_frames(x, np.zeros(6, int), t, p, (2, 1), 2)
    assert frames.dtype == np.float32 and frames.shape == (2, 2, 1, 2)
    # slice 0: one OFF event at x=1, one ON at x=0 → 1/150 000 events/µs each, below the 1e-5 floor of
    # the per-frame maximum, so they become (1/150 000)/1e-5 = 2/3, not 1
    # slice 1: three ON at x=1 and the last event (t ≥ T·dt, kept: the last slice runs to the end) at
    # x=0 → 3/150 001 and 1/150 001, max 2.0e-5 → 1 and 1/3; no OFF event → 0
    expected = np.array([[[[0.0, 2 / 3]], [[2 / 3, 0.0]]], [[[0.0, 0.0]], [[1 / 3, 1.0]]]])
    np.testing.assert_allclose(frames, expected, rtol=1e-3)  # float16 storage, as the original
    np.testing.assert_array_equal(frames, expected.astype(np.float16).astype(np.float32))
    # tonic's slicing (counts mode) drops that last event instead
    counts = events_to_frames(x, np.zeros(6, int), t, p, (2, 1), 2)
    assert counts[1, 1].tolist() == [[0, 3]]


def test_frequency_frames_normalise_each_frame_and_polarity_by_its_own_max() -> None:
    # short recording (span 99 µs, T = 3, dt = 33): every maximum is far above the floor
    t = np.array([0, 1, 2, 40, 41, 70, 99])
    x = np.array([0, 0, 2, 1, 1, 0, 2])
    y = np.array([0, 0, 1, 1, 1, 1, 0])
    p = np.array([1, 1, 1, 0, 0, 1, 1])
    frames = events_to_frequency_frames(x, y, t, p, (3, 2), 3)
    expected = np.zeros((3, 2, 2, 3))
    expected[0, 1, 0, 0], expected[0, 1, 1, 2] = 1.0, 0.5  # ON counts 2 and 1 → ÷ 2
    expected[1, 0, 1, 1] = 1.0  # two OFF events at (y, x) = (1, 1)
    expected[2, 1, 1, 0] = 1.0  # t = 70 in the last window [66, 99) …
    expected[2, 1, 0, 2] = 1.0  # … and t = 99 = T·dt, kept because the last slice runs to the end
    np.testing.assert_array_equal(frames, expected.astype(np.float32))


def _reference_frequency_frames(x, y, t, p, width, height, T):
    """Spec §7.3 step by step, one time window at a time, in float64 (the slow, obvious way)."""
    t = t - t[0]
    dt = t[-1] // T
    frames = np.zeros((T, 2, height, width))
    for i in range(T):
        inside = np.flatnonzero((t >= i * dt) & (t < (i + 1) * dt))
        if len(inside) == 0:
            continue
        members = np.arange(inside[0], len(t) if i == T - 1 else inside[-1] + 1)
        np.add.at(frames[i], (p[members], y[members], x[members]), 1.0)
        frames[i] /= dt if i < T - 1 else dt + t[-1] % T
        for polarity in range(2):
            frames[i, polarity] /= max(frames[i, polarity].max(), 1e-5)
    return frames


@pytest.mark.parametrize(
    ("n", "span", "T", "polarity"),
    [
        (3000, 2_000_000, 12, "both"),
        (200, 50_000, 12, "both"),
        (400, 5_000_000, 6, "on_only"),
        (40, 1_000, 7, "both"),
    ],
)
def test_frequency_frames_equal_the_step_by_step_reference(n: int, span: int, T: int, polarity: str) -> None:
    rng = np.random.default_rng(n + T)
    width, height = 31, 19
    x, y = rng.integers(0, width, n), rng.integers(0, height, n)
    t = np.sort(rng.integers(0, span + 1, n)) + 777
    p = rng.integers(0, 2, n) if polarity == "both" else np.ones(n, int)
    ours = events_to_frequency_frames(x, y, t, p, (width, height), T)
    np.testing.assert_allclose(
        ours, _reference_frequency_frames(x, y, t, p, width, height, T), rtol=1e-3, atol=0
    )


def test_frequency_frames_keep_an_empty_last_window_empty() -> None:
    # span 10, T = 2 → windows [0, 5) and [5, 10); nothing in the second, so the event at t = 10 is not
    # added to it (the original only extends a last slice that holds an event)
    frames = events_to_frequency_frames(
        np.zeros(4, int), np.zeros(4, int), np.array([0, 1, 2, 10]), np.ones(4, int), (1, 1), 2
    )
    assert frames[:, 1, 0, 0].tolist() == [1.0, 0.0]


def test_frequency_frames_refuse_a_recording_no_longer_than_T_microseconds() -> None:
    with pytest.raises(ValueError, match="spans 12 µs"):
        events_to_frequency_frames(
            np.zeros(2, int), np.zeros(2, int), np.array([3, 15]), np.ones(2, int), (1, 1), 12
        )


def test_torchvision_style_resize_does_not_align_corners() -> None:
    frames = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).reshape(2, 2, 8, 8)
    out = resize_frames(frames, 4, align_corners=False)
    # halving with align_corners=False samples each output at the centre of a 2×2 block: the block mean
    torch.testing.assert_close(out, torch.nn.functional.avg_pool2d(frames, 2))


def test_resize_is_bilinear_align_corners() -> None:
    frames = torch.arange(2 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 2, 4, 6)
    out = resize_frames(frames, 9)
    assert out.shape == (2, 2, 9, 9)
    # align_corners=True keeps the four corner values exactly
    torch.testing.assert_close(out[..., 0, 0], frames[..., 0, 0])
    torch.testing.assert_close(out[..., -1, -1], frames[..., -1, -1])
    torch.testing.assert_close(out[..., 0, -1], frames[..., 0, -1])


def test_bin_files_read_back_identically_by_tonic(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    x, y = rng.integers(0, 256, n), rng.integers(0, 240, n)
    t = np.sort(rng.integers(0, MAX_TIMESTAMP_US, n))
    t[-1] = MAX_TIMESTAMP_US - 1  # the largest timestamp the format holds without overflow markers
    p = rng.integers(0, 2, n)
    path = tmp_path / "image_0001.bin"
    write_bin_events(path, x, y, t, p)
    assert path.stat().st_size == 5 * n
    events = read_mnist_file(str(path), dtype=events_struct)
    np.testing.assert_array_equal(events["x"], x)
    np.testing.assert_array_equal(events["y"], y)
    np.testing.assert_array_equal(events["t"], t)
    np.testing.assert_array_equal(events["p"], p.astype(bool))
    ours = read_bin_events(path)
    np.testing.assert_array_equal(ours["t"], t)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("t", MAX_TIMESTAMP_US, "2\\*\\*23"),
        ("y", 240, "overflow"),
        ("x", 256, "one byte"),
        ("p", 2, "0 or 1"),
    ],
)
def test_writer_refuses_what_the_format_cannot_hold(tmp_path, column: str, value: int, message: str) -> None:
    columns = {"x": np.array([1, 2]), "y": np.array([1, 2]), "t": np.array([0, 10]), "p": np.array([0, 1])}
    columns[column] = columns[column].copy()
    columns[column][-1] = value
    with pytest.raises(ValueError, match=message):
        write_bin_events(tmp_path / "bad.bin", **columns)
    assert not (tmp_path / "bad.bin").exists()


def test_writer_refuses_unsorted_timestamps(tmp_path) -> None:
    with pytest.raises(ValueError, match="not sorted"):
        write_bin_events(tmp_path / "bad.bin", [0, 0], [0, 0], [10, 5], [0, 1])


def test_truncated_bin_file_is_named(tmp_path) -> None:
    path = tmp_path / "image_0007.bin"
    write_bin_events(path, [1, 2, 3], [1, 2, 3], [0, 1, 2], [0, 1, 0])
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DatasetError, match="image_0007.bin.*13 bytes"):
        read_bin_events(path)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty.bin"):
        read_bin_events(empty)
