"""Writing a file so that a reader sees the old version or the new one, never half of one.

Every simple "write a whole file" in the project goes through :func:`atomic_path`: write a temporary
sibling (its name carries the process id, so two writers never share it), then ``os.replace`` it onto
the target, which POSIX makes atomic within a directory. A resumed run, a report on a running sweep or
a second driver therefore never reads a torn file. The data cache (``engine.data.cache``) keeps its own
protocol on top of the same rename: it also fsyncs, builds directories and checksums what it wrote.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: ``tmp`` replaces ``p`` when the block succeeds and is
    removed when it raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
