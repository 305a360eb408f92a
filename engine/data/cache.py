"""A build-once, lock-guarded, self-checking disk cache for arrays and generated directories.

Why: every trial of a sweep needs the same event frames. Converting 8,709 N-Caltech101 recordings
takes minutes, so it is done once per (pair, split, T, event size, file list) into one raw
memory-mapped file that every trial on the node shares through the page cache.

Guarantees:
- **Built once.** Builders take an exclusive ``fcntl.flock`` on ``<entry>.lock`` and re-check the
  entry after getting it, so N processes starting together do the work once; the others wait and
  then map the finished file.
- **Never half-read.** Data are written to a temp file and ``os.replace``-d into place; the manifest
  (shape, dtype, size, key, checksum) is written the same way *after* the data, and it is the commit
  marker: no manifest, no entry.
- **Corruption is detected and rebuilt.** Opening checks the manifest's key, shape, dtype and byte
  size against the file, and a checksum of 64 blocks spread over the file (the whole file when it is
  under 4 MiB). A truncated, overwritten or stale file is rebuilt, never read.
- **Traceable.** Every build appends one line to ``<root>/build.log``.

Entries are keyed by the hash of a JSON-able ``key`` that must contain everything that changes the
content (the data developer passes file lists with sizes and mtimes, T, sizes, a format version).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DatasetError

__all__ = ["ArrayCache", "default_cache_root", "key_digest"]

_SAMPLE_BLOCKS = 64
_BLOCK = 64 * 1024
_FULL_HASH_BELOW = 4 * 1024 * 1024


def default_cache_root(configured: str | None = None) -> Path:
    """``data.cache_root`` if set, else ``$SPIKESWEEP_CACHE``, else ``~/.cache/spikesweep``."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("SPIKESWEEP_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "spikesweep"


def key_digest(key: Any) -> str:
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _file_checksum(path: Path, size: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        if size <= _FULL_HASH_BELOW:
            digest.update(handle.read())
        else:
            for offset in np.linspace(0, size - _BLOCK, _SAMPLE_BLOCKS).astype(np.int64):
                handle.seek(int(offset))
                digest.update(handle.read(_BLOCK))
    return digest.hexdigest()


def _tree_listing(path: Path) -> list[list[Any]]:
    return sorted([str(p.relative_to(path)), p.stat().st_size] for p in path.rglob("*") if p.is_file())


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ArrayCache:
    """Cache entries under one root directory (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    # ------------------------------------------------------------------------------------------
    # arrays
    def paths(self, name: str, key: Any) -> tuple[Path, Path, Path]:
        stem = f"{name}-{key_digest(key)}"
        return self.root / f"{stem}.dat", self.root / f"{stem}.json", self.root / f"{stem}.lock"

    def open_array(self, name: str, key: Any, shape: tuple[int, ...], dtype: Any) -> np.memmap | None:
        """The cached array read-only, or ``None`` if the entry is missing, stale or damaged."""
        data, manifest, _ = self.paths(name, key)
        dtype = np.dtype(dtype)
        try:
            meta = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        expected = {"key": json.loads(json.dumps(key, default=str)), "shape": list(shape), "dtype": dtype.str}
        if any(meta.get(k) != v for k, v in expected.items()) or meta.get("nbytes") != nbytes:
            return None
        try:
            size = data.stat().st_size
        except OSError:
            return None
        if size != nbytes or _file_checksum(data, size) != meta.get("checksum"):
            return None
        if nbytes == 0:
            return np.zeros(shape, dtype=dtype)  # type: ignore[return-value]
        return np.memmap(data, dtype=dtype, mode="r", shape=shape)

    def get_array(
        self,
        name: str,
        key: Any,
        shape: tuple[int, ...],
        dtype: Any,
        fill: Callable[[np.ndarray], None],
    ) -> np.memmap:
        """Open the entry, building it first (once, under the lock) if it is missing or damaged.

        ``fill(out)`` receives a writable memmap of ``shape``/``dtype`` and must fill all of it.
        """
        found = self.open_array(name, key, shape, dtype)
        if found is not None:
            return found
        data, manifest, lock = self.paths(name, key)
        with self._locked(lock):
            found = self.open_array(name, key, shape, dtype)
            if found is not None:
                return found
            self._remove_leftovers(data, manifest)
            dtype = np.dtype(dtype)
            tmp = data.with_name(f"{data.name}.tmp.{os.getpid()}")
            started = time.time()
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes:
                out = np.memmap(tmp, dtype=dtype, mode="w+", shape=shape)
                fill(out)
                out.flush()
                del out
            else:
                tmp.write_bytes(b"")
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, data)
            meta = {
                "key": key,
                "shape": list(shape),
                "dtype": dtype.str,
                "nbytes": nbytes,
                "checksum": _file_checksum(data, nbytes),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "build_seconds": round(time.time() - started, 3),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
            _write_json_atomic(manifest, meta)
            self._log_build(data.stem, time.time() - started)
        found = self.open_array(name, key, shape, dtype)
        if found is None:  # pragma: no cover - only if the disk lies to us
            raise OSError(f"cache entry {data} failed its own check right after being built")
        return found

    # ------------------------------------------------------------------------------------------
    # directories (generated datasets)
    def get_directory(self, name: str, key: Any, build: Callable[[Path], None]) -> Path:
        """A directory built once by ``build(tmp_dir)``, then renamed into place and checked by listing."""
        stem = f"{name}-{key_digest(key)}"
        target, manifest, lock = self.root / stem, self.root / f"{stem}.json", self.root / f"{stem}.lock"
        if self._directory_valid(target, manifest, key):
            return target
        with self._locked(lock):
            if self._directory_valid(target, manifest, key):
                return target
            manifest.unlink(missing_ok=True)
            if target.exists():
                shutil.rmtree(target)
            for leftover in self.root.glob(f"{stem}.tmp.*"):
                shutil.rmtree(leftover, ignore_errors=True)
            tmp = self.root / f"{stem}.tmp.{os.getpid()}"
            tmp.mkdir(parents=True)
            started = time.time()
            build(tmp)
            os.replace(tmp, target)
            _write_json_atomic(manifest, {"key": key, "files": _tree_listing(target)})
            self._log_build(stem, time.time() - started)
        return target

    @staticmethod
    def _directory_valid(target: Path, manifest: Path, key: Any) -> bool:
        try:
            meta = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("key") != json.loads(json.dumps(key, default=str)) or not target.is_dir():
            return False
        return meta.get("files") == _tree_listing(target)

    # ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, lock: Path) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a+")  # noqa: SIM115 — closed by the with below
        except OSError as exc:
            raise DatasetError(
                f"the frame cache directory {str(self.root)!r} is not writable ({exc.strerror or exc}); "
                "point SPIKESWEEP_CACHE (or data.cache_root) at a directory you can write, e.g. "
                "SPIKESWEEP_CACHE=$TMPDIR/spikesweep"
            ) from None
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _remove_leftovers(data: Path, manifest: Path) -> None:
        """Under the lock nobody else is writing, so temp files are from a crashed builder."""
        manifest.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        for leftover in data.parent.glob(f"{data.name}.tmp.*"):
            leftover.unlink(missing_ok=True)

    def _log_build(self, stem: str, seconds: float) -> None:
        fields = [
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            socket.gethostname(),
            str(os.getpid()),
            stem,
            f"{seconds:.2f}s",
        ]
        line = "\t".join(fields) + "\n"
        with open(self.root / "build.log", "a") as handle:
            handle.write(line)

    def build_count(self, name: str, key: Any) -> int:
        """How many times ``build.log`` says this entry was built (for tests and diagnostics)."""
        stem = f"{name}-{key_digest(key)}"
        try:
            lines = (self.root / "build.log").read_text().splitlines()
        except OSError:
            return 0
        return sum(1 for line in lines if line.split("\t")[3:4] == [stem])
