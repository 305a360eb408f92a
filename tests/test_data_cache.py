"""The frame cache is built once under concurrency, and damaged entries are rebuilt, never read."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest

from engine.data.cache import ArrayCache, default_cache_root

KEY = {"pair": "test", "files": "abc", "T": 4}
SHAPE = (6, 4, 2, 8, 8)


def _fill_slowly(marker: Path):
    def fill(out: np.ndarray) -> None:
        with open(marker, "a") as handle:  # one line per build, written only by a builder
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # keep the build window open while the other processes arrive
        out[...] = np.arange(out.size, dtype=np.float32).reshape(out.shape)

    return fill


def _worker(root: str, marker: str, barrier, results) -> None:
    barrier.wait()  # all four ask at the same moment
    array = ArrayCache(root).get_array("frames", KEY, SHAPE, np.float32, _fill_slowly(Path(marker)))
    results.put(float(np.asarray(array).sum()))


def test_four_processes_build_the_cache_once(tmp_path) -> None:
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    marker = tmp_path / "builds.txt"
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), str(marker), barrier, results)) for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    sums = [results.get(timeout=5) for _ in procs]
    expected = float(np.arange(np.prod(SHAPE)).sum())
    assert sums == [expected] * 4
    assert len(marker.read_text().splitlines()) == 1
    assert ArrayCache(tmp_path).build_count("frames", KEY) == 1


def _count(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def _fill(marker: Path, value: float = 1.0):
    def fill(out: np.ndarray) -> None:
        with open(marker, "a") as handle:
            handle.write("build\n")
        out[...] = value

    return fill


def test_second_open_reads_without_building(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    first = cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    second = cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    assert _count(marker) == 1
    assert isinstance(second, np.memmap) and not second.flags.writeable
    np.testing.assert_array_equal(first, second)


def test_truncated_cache_file_is_rebuilt_not_read(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker, 2.0))
    data, _, _ = cache.paths("x", KEY)
    os.truncate(data, data.stat().st_size // 2)
    assert cache.open_array("x", KEY, SHAPE, np.float32) is None
    rebuilt = cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker, 3.0))
    assert _count(marker) == 2
    assert data.stat().st_size == np.prod(SHAPE) * 4
    assert float(rebuilt.min()) == float(rebuilt.max()) == 3.0


def test_overwritten_bytes_are_detected(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    data, _, _ = cache.paths("x", KEY)
    with open(data, "r+b") as handle:  # same size, different content
        handle.seek(1000)
        handle.write(b"\xff\xff\xff\xff")
    assert cache.open_array("x", KEY, SHAPE, np.float32) is None
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    assert _count(marker) == 2


def test_missing_manifest_or_changed_shape_means_rebuild(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    _, manifest, _ = cache.paths("x", KEY)
    meta = json.loads(manifest.read_text())
    assert meta["shape"] == list(SHAPE) and meta["nbytes"] == np.prod(SHAPE) * 4
    manifest.unlink()  # a builder that died after renaming the data but before the manifest
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    assert _count(marker) == 2
    assert cache.open_array("x", KEY, (5, 4, 2, 8, 8), np.float32) is None


def test_leftovers_of_a_crashed_builder_are_removed(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    data, _, _ = cache.paths("x", KEY)
    tmp_path.mkdir(exist_ok=True)
    leftover = data.with_name(data.name + ".tmp.99999")
    leftover.write_bytes(b"half written")
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker))
    assert not leftover.exists()


def test_a_different_key_is_a_different_entry(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"
    cache.get_array("x", KEY, SHAPE, np.float32, _fill(marker, 1.0))
    other = cache.get_array("x", {**KEY, "files": "changed"}, SHAPE, np.float32, _fill(marker, 5.0))
    assert _count(marker) == 2 and float(other[0, 0, 0, 0, 0]) == 5.0


def test_directory_entries_are_built_once_and_rebuilt_when_damaged(tmp_path) -> None:
    cache, marker = ArrayCache(tmp_path), tmp_path / "m"

    def build(out: Path) -> None:
        _fill(marker)(np.zeros(1))
        (out / "sub").mkdir()
        (out / "sub" / "a.txt").write_text("hello")

    first = cache.get_directory("gen", {"v": 1}, build)
    assert cache.get_directory("gen", {"v": 1}, build) == first and _count(marker) == 1
    (first / "sub" / "a.txt").unlink()
    again = cache.get_directory("gen", {"v": 1}, build)
    assert (again / "sub" / "a.txt").read_text() == "hello" and _count(marker) == 2


def test_default_cache_root(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SPIKESWEEP_CACHE", str(tmp_path / "env"))
    assert default_cache_root(None) == tmp_path / "env"
    assert default_cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    monkeypatch.delenv("SPIKESWEEP_CACHE")
    assert default_cache_root(None) == Path.home() / ".cache" / "spikesweep"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
