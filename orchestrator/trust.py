"""Resume only from state nobody else could have written: an OpenSSH-StrictModes-style check.

Why: resuming a sweep hands its directory to Ray Tune's ``Tuner.restore``, which unpickles
``tuner.pkl`` and the searcher's state — and unpickling runs whatever code the file names. Sweeps live
on shared cluster storage, so a file planted by another user (or by anyone, in a group- or
world-writable directory) would run as us. Our own files are unpickled only by our own Tune, so the
rule is the one OpenSSH applies to ``~/.ssh``: every file and directory under the sweep directory, and
the directory itself, must be owned by the user who resumes and writable by nobody else. Otherwise the
resume is refused, naming what failed and how to fix it, before anything is read. The driver creates
sweeps under a umask without group/other write so that this holds by default.

What this does not cover: a user who can write as us, or root. Everything else spikesweep reads from a
sweep directory (JSON, Parquet, SQLite, ``torch.load(weights_only=True)`` checkpoints) runs no code.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["UntrustedStateError", "check_state_trusted", "untrusted_paths"]

_SHOWN = 8


class UntrustedStateError(ConfigError):
    """A sweep's saved state could have been written by another user: it is not unpickled."""


def _problem(path: Path, uid: int) -> str | None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve()
            st = target.stat()  # a link is as trustworthy as what it points to
    except OSError as exc:
        return f"{path}: cannot be checked ({exc.strerror or exc})"
    if st.st_uid != uid:
        return f"{path}: owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o022:
        who = (
            "group and others" if st.st_mode & 0o022 == 0o022 else "group" if st.st_mode & 0o020 else "others"
        )
        return f"{path}: writable by {who} (mode {stat.filemode(st.st_mode)})"
    return None


def untrusted_paths(root: Path) -> list[str]:
    """Every problem under ``root`` (itself included), without following links into other trees."""
    uid = os.geteuid()
    root = Path(root)
    problems = [p for p in [_problem(root, uid)] if p]
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            problem = _problem(Path(directory) / name, uid)
            if problem:
                problems.append(problem)
    return problems


def check_state_trusted(root: Path) -> None:
    """Raise :class:`UntrustedStateError` unless only the current user could have written ``root``'s tree."""
    problems = untrusted_paths(root)
    if not problems:
        return
    shown = problems[:_SHOWN] + ([f"… and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
    raise UntrustedStateError(
        f"refusing to resume the sweep in {str(root)!r}: resuming unpickles Ray Tune's saved state, and "
        "these files could have been written by someone else:\n  - "
        + "\n  - ".join(shown)
        + f"\nIf every file is yours and unchanged, remove the write permission of others "
        f"(chmod -R go-w {str(root)!r}) and run again; otherwise start a new sweep under another --name."
    )
